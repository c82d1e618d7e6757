// What a step kind is, declared once per kind in its own file: the slice of
// the configuration it reads (the input of its hash), the roles of the steps
// it reads (required, and optional ones some plans give), what its builder
// needs that is not hashed — all type parameters, so that the type check
// holds every makeStep of the plan to them — and its name, version and builder. The plan makes steps of
// these kinds; realize runs their builders.
import type { BuildContext } from "./context.js";

/** What a builder gets besides its context and output directory. */
export interface BuildArguments<Slice, Role extends string, Optional extends string, Local> {
  readonly slice: Slice;
  /** The store paths of the steps it reads, by role. */
  readonly inputs: Readonly<Record<Role, string>> & Readonly<Partial<Record<Optional, string>>>;
  readonly local: Local;
  /** The persistent directory the kind asked for (see StepKind.workspace). */
  readonly workspace: string | undefined;
}

export interface StepKind<Slice, Role extends string, Optional extends string, Local> {
  /** Part of every hash of the kind: two kinds never share an output. */
  readonly kind: string;
  /** Bump it when what the builder makes from the same inputs changes. */
  readonly version: number;
  /**
   * A directory under the store's builds/ that the kind keeps between builds
   * (the kernel's Kbuild output), one build at a time; named from `local`.
   */
  workspace?(local: Local): string;
  /** Fills `out`; may return a note on the build (the kernel's ccache hit rate). */
  build(context: BuildContext, out: string, args: BuildArguments<Slice, Role, Optional, Local>): Promise<string | void>;
}

export function defineStep<Slice, Role extends string = never, Optional extends string = never, Local = undefined>(
  kind: StepKind<Slice, Role, Optional, Local>,
): StepKind<Slice, Role, Optional, Local> {
  return kind;
}

/** A planned step: a kind applied to a slice and input steps. */
export interface Step<Slice = unknown, Role extends string = string, Optional extends string = string, Local = unknown> {
  /** Names the step in events, `keel log` and `keel build <system> <id>`; stable across plans. */
  readonly id: string;
  readonly kind: StepKind<Slice, Role, Optional, Local>;
  /** The store name: `<hash>-<name>`. */
  readonly name: string;
  readonly hash: string;
  readonly slice: Slice;
  readonly inputs: Readonly<Record<Role, Step>> & Readonly<Partial<Record<Optional, Step>>>;
  /** What the builder needs that does not change its output: where things are on this machine. */
  readonly local: Local;
}
