// What a user writes: modules, as objects or functions of `{ config, lib }`.
// `defineModule` returns its argument; its overloads exist for the editor, and
// it notes the calling file so that every definition can name where it came from.
import { fileURLToPath } from "node:url";
import type { BuiltinOptions } from "../options/index.js";
import type { InputSpec } from "../inputs/spec.js";
import type { lib } from "./lib.js";
import type { DefinitionsOf, OptionTree, ResolvedOf } from "./option.js";
import type { Wrapped } from "./properties.js";

export type Lib = typeof lib;

export interface ModuleArgs<O extends OptionTree = BuiltinOptions> {
  /** The final value of every option (read lazily; a cycle is an error). */
  readonly config: ResolvedOf<O>;
  readonly lib: Lib;
  /** The project's inputs, by name. */
  readonly inputs: Readonly<Record<string, InputSpec>>;
  /** The name of the system being evaluated, as in `defineProject({ systems })`. */
  readonly name: string;
}

export type Definitions<O extends OptionTree = BuiltinOptions> = Wrapped<DefinitionsOf<O>>;

interface ModuleParts<O extends OptionTree> {
  /** Other modules to include; each module is included once however often it is imported. */
  readonly imports?: readonly ModuleInput[];
  /** Options this module declares. */
  readonly options?: O;
  /** This module's definitions, when it declares options or computes them from `config`. */
  readonly config?:
    | Definitions<BuiltinOptions & NoInfer<O>>
    | ((args: ModuleArgs<BuiltinOptions & NoInfer<O>>) => Definitions<BuiltinOptions & NoInfer<O>>);
}

/**
 * A module: `imports`, `options` and `config`, or definitions written at the top level.
 * Only `options` decides `O`; definitions are checked against it, never widen it.
 */
export type ModuleObject<O extends OptionTree = Record<never, never>> = ModuleParts<O> &
  DefinitionsOf<BuiltinOptions & NoInfer<O>>;

export type ModuleFunction<O extends OptionTree = Record<never, never>> = (
  args: ModuleArgs<BuiltinOptions & O>,
) => ModuleObject<O>;

// The parameter is `never` so that a function of any argument type fits: what it
// is called with is fixed by keel, not by the module.
export type ModuleInput = ModuleObject<OptionTree> | ((args: never) => unknown);

const fileSymbol = Symbol.for("keel.moduleFile");

export function defineModule<O extends OptionTree = Record<never, never>>(module: ModuleObject<O>): ModuleObject<O>;
export function defineModule<O extends OptionTree = Record<never, never>>(module: ModuleFunction<O>): ModuleFunction<O>;
export function defineModule(module: object): object {
  noteFile(module, callerFile());
  return module;
}

export function noteFile(module: object, file: string | undefined): void {
  if (file !== undefined && !Object.prototype.hasOwnProperty.call(module, fileSymbol)) {
    Object.defineProperty(module, fileSymbol, { value: file, enumerable: false });
  }
}

export function moduleFile(module: object): string | undefined {
  return (module as { [fileSymbol]?: string })[fileSymbol];
}

const thisFile = fileURLToPath(import.meta.url);

/** The source file of the first stack frame outside this file. */
export function callerFile(): string | undefined {
  const stack = new Error().stack?.split("\n").slice(1) ?? [];
  for (const line of stack) {
    const match = /\((.*):\d+:\d+\)$/.exec(line) ?? /at (.*):\d+:\d+$/.exec(line);
    const location = match?.[1];
    if (location === undefined) continue;
    const file = location.startsWith("file://") ? fileURLToPath(location) : location;
    if (file !== thisFile && !file.startsWith("node:")) return file;
  }
  return undefined;
}
