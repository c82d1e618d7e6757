// Option declarations and the types derived from them: a tree of `Option`s is
// both the runtime schema and, through `ResolvedOf`/`DefinitionsOf`, the static
// type a module's definitions are checked against in the editor.
import type { Wrapped } from "./properties.js";

/** Where a definition came from and what it said. `value` may still hold properties. */
export interface Definition {
  readonly file: string;
  readonly value: unknown;
}

export type Path = readonly string[];

/** An option type owns its check and its merge, like NixOS's `lib.types`. */
export interface OptionType<R, I = R> {
  /** How the type is named in docs and errors: "list of string". */
  readonly description: string;
  /** Shallow check of one definition value (elements are checked by merge). */
  check(value: unknown): boolean;
  /** Merges definitions that passed `check`, in order, highest priority only. */
  merge(path: Path, defs: readonly Definition[]): R;
  /**
   * The value of an option of this type that has no definitions (all of them
   * `mkIf(false, …)`, or none and no default), as NixOS's `emptyValue`: `[]`
   * for a list, `{}` for a record, null, a submodule's defaults. Without it, reading such an option is an error.
   */
  emptyValue?(path: Path): R;
  /** Sub-options, for types made of a module (submodule): shown by `keel options`. */
  readonly subOptions?: OptionTree;
  /** The names between the option and its sub-options in docs: `<name>` for a record, `*` for a list. */
  readonly subPath?: readonly string[];
  /** Phantom fields: the resolved value's type and what a user may write. */
  readonly _resolved?: R;
  readonly _input?: I;
}

export type AnyType = OptionType<unknown, unknown>;

export interface OptionSpec<R, I> {
  type: OptionType<R, I>;
  /** Required once per option: a second declaration that extends it (a submodule's options) leaves it out. */
  description?: string;
  /** A definition at the lowest priority (`mkOptionDefault`), merged like any other. */
  default?: NoInfer<I>;
  /** A value shown in docs; never used for evaluation. */
  example?: unknown;
  /** Text shown in docs instead of the default value, when the value is computed. */
  defaultText?: string;
}

const optionBrand = Symbol.for("keel.option");

export class Option<R, I = R> {
  readonly [optionBrand] = true;
  readonly type: OptionType<R, I>;
  readonly description: string;
  readonly default: I | undefined;
  readonly hasDefault: boolean;
  /** Whether the default is a getter, computed when the option's value is (docs do not read it). */
  readonly computedDefault: boolean;
  readonly example: unknown;
  readonly defaultText: string | undefined;
  /** Filled in when a module declaring this option is collected. */
  declaredIn = "<unknown>";
  /** An option that forwards to another (mkRenamedOptionModule, mkAliasOptionModule) or is refused (mkRemovedOptionModule). */
  alias: OptionAlias | undefined;

  constructor(spec: OptionSpec<R, I>) {
    this.type = spec.type;
    this.description = spec.description ?? "";
    this.hasDefault = "default" in spec;
    // A default written as a getter is read when the option's value is, so it may read config (NixOS's defaults are lazy).
    const getter = Object.getOwnPropertyDescriptor(spec, "default")?.get;
    this.computedDefault = getter !== undefined;
    if (getter === undefined) this.default = spec.default;
    else Object.defineProperty(this, "default", { get: () => getter.call(spec) as I | undefined, enumerable: true });
    this.example = spec.example;
    this.defaultText = spec.defaultText;
  }
}

export type AnyOption = Option<unknown, unknown>;

export interface OptionAlias {
  readonly kind: "renamed" | "alias" | "removed";
  /** Where definitions and reads go (renamed, alias). */
  readonly to: Path | undefined;
  /** What a removed option's user should do instead. */
  readonly message: string;
}

export function mkOption<R, I>(spec: OptionSpec<R, I>): Option<R, I> {
  return new Option(spec);
}

export function isOption(value: unknown): value is AnyOption {
  return typeof value === "object" && value !== null && optionBrand in value;
}

/** A tree of option declarations: records whose leaves are options. */
export interface OptionTree {
  readonly [key: string]: AnyOption | OptionTree;
}

/** The fully merged, read-only configuration an option tree describes. */
export type ResolvedOf<T> = {
  readonly [K in keyof T]: T[K] extends Option<infer R, unknown> ? R : ResolvedOf<T[K]>;
};

/** What a module may write for an option tree: any part of it, each part possibly wrapped. */
export type DefinitionsOf<T> = {
  [K in keyof T]?: T[K] extends Option<unknown, infer I> ? Wrapped<I> : Wrapped<DefinitionsOf<T[K]>>;
};
