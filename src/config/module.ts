// What a user writes: modules, as objects or functions of `{ config, lib }`.
// `defineModule` returns its argument; its overloads exist for the editor, and
// it notes the calling file so that every definition can name where it came from.
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ConfigError } from "../errors.js";
import type { BuiltinOptions } from "../options/index.js";
import type { InputSpec } from "../inputs/spec.js";
import type { lib } from "./lib.js";
import type { DefinitionsOf, OptionTree, OptionType, ResolvedOf } from "./option.js";
import type { Wrapped } from "./properties.js";
import { isRecord } from "./tree.js";

export type Lib = typeof lib;

export interface ModuleArgs<O extends OptionTree = BuiltinOptions> {
  /** The final value of every option (read lazily; a cycle is an error). */
  readonly config: ResolvedOf<O>;
  readonly lib: Lib;
  /** The project's inputs, by name. */
  readonly inputs: Readonly<Record<string, InputSpec>>;
  /** The name of the system being evaluated, as in `defineProject({ systems })`. */
  readonly name: string;
  /** The project's `specialArgs`, and what modules give in `_module.args`; asking for one nobody gives is an error. */
  readonly [arg: string]: unknown;
}

export type Definitions<O extends OptionTree = BuiltinOptions> = Wrapped<DefinitionsOf<O>>;

interface ModuleParts<O extends OptionTree> {
  /** Other modules to include; each module is included once however often it is imported. */
  readonly imports?: readonly ModuleInput[];
  /** Modules to leave out wherever they are imported (by value, or by file), with what only they import. */
  readonly disabledModules?: readonly (ModuleInput | string)[];
  /** Options this module declares. */
  readonly options?: O;
  /** The type of names no option declares (`types.attrsOf(types.str)`): they become values of it instead of errors. */
  readonly freeformType?: OptionType<unknown>;
  /** The kind of evaluation this module is written for: importing it into one of another class is an error. */
  readonly _class?: string;
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

/**
 * Anything given to `imports` or `systems`: a module made with `defineModule`.
 * Modules with their own options differ in type, so any object or function is
 * accepted here and checked when the system is evaluated.
 */
export type ModuleInput = object;

const fileSymbol = Symbol.for("keel.moduleFile");

// One signature with a union rather than overloads: TypeScript then reports a
// wrong definition at the property, not as "no overload matches this call".
export function defineModule<O extends OptionTree = Record<never, never>>(
  module: ModuleObject<O> | ModuleFunction<O>,
): ModuleObject<O> | ModuleFunction<O> {
  noteFile(module, callerFile(defineModule));
  return module;
}

export function noteFile(module: object, file: string | undefined): void {
  // A frozen module, or a file's namespace object (`import * as m`), cannot be noted; evaluation says what is wrong with the latter.
  if (file !== undefined && Object.isExtensible(module) && !Object.prototype.hasOwnProperty.call(module, fileSymbol)) {
    Object.defineProperty(module, fileSymbol, { value: file, enumerable: false });
  }
}

/** Whether a value is a file's module namespace (`import * as m from "./m"`), not a module. */
export function isNamespace(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && Object.prototype.toString.call(value) === "[object Module]";
}

/** How `importer` names `file` in an import statement: `./box`, `../shared/common`. */
export function importSpecifier(importer: string, file: string): string {
  const relative = path.relative(path.dirname(importer), file).replace(/\.[cm]?[jt]sx?$/, "");
  return relative.startsWith(".") ? relative : `./${relative}`;
}

export function moduleFile(module: object): string | undefined {
  return (module as { [fileSymbol]?: string })[fileSymbol];
}

/**
 * The source file of the code that called `callee`. Frames are cut at the
 * function itself rather than matched by file name: source maps may name
 * keel's own file differently from its module URL.
 */
function callerFile(callee: (...args: never[]) => unknown): string | undefined {
  const holder: { stack?: string } = {};
  Error.captureStackTrace(holder, callee);
  return stackFrames(holder.stack)[0]?.file;
}

/** A place in a stack trace: a source file by path, line and column. */
export interface Frame {
  readonly file: string;
  readonly line: number;
  readonly column: number;
}

/** The frames of a stack trace that are in files (not Node's own, not a `data:` URL without a file). */
export function stackFrames(stack: string | undefined): Frame[] {
  const frames: Frame[] = [];
  for (const line of stack?.split("\n").slice(1) ?? []) {
    const match = /\((.*):(\d+):(\d+)\)$/.exec(line) ?? /at (?:async )?(.*):(\d+):(\d+)$/.exec(line);
    const file = match?.[1] === undefined ? undefined : locationFile(match[1]);
    if (file !== undefined) frames.push({ file, line: Number(match?.[2]), column: Number(match?.[3]) });
  }
  return frames;
}

/**
 * The path in a stack frame's location. tsx runs a CommonJS-mode file from a
 * `data:` URL that names it in `filePath=`, and marks its loads with a query.
 */
function locationFile(location: string): string | undefined {
  if (location.startsWith("node:")) return undefined;
  let file = location;
  if (file.startsWith("data:")) {
    const named = /[?&]filePath=([^&]*)/.exec(file)?.[1];
    if (named === undefined) return undefined;
    file = decodeURIComponent(named);
  }
  if (file.startsWith("file://")) file = fileURLToPath(file.replace(/\?.*$/, ""));
  return file.replace(/\?.*$/, "");
}

/** A module's parts, as splitModule gives them. */
export interface SplitModule {
  readonly imports: readonly ModuleInput[];
  readonly options: unknown;
  readonly config: unknown;
  readonly disabledModules: readonly unknown[];
  /** Its `freeformType`: NixOS's shorthand for defining `_module.freeformType`. */
  readonly freeformType?: unknown;
  /** Its `_class`: the kind of evaluation it is written for ("nixos"), checked against the evaluation's. */
  readonly _class?: unknown;
}

const partNames = new Set(["imports", "options", "config", "disabledModules", "freeformType", "_class"]);

/**
 * Splits a module into imports, options and definitions, as NixOS's
 * `unifyModuleSyntax`. Definitions are copied with their getters unread.
 */
export function splitModule(file: string, module: unknown): SplitModule {
  if (!isRecord(module)) {
    throw new ConfigError(
      `The module function in \`${file}' returned ${module === undefined ? "nothing" : "something that is not a record"}.\n` +
        "Fix: return a module, e.g. `({ config }) => ({ networking: { hostName: \"x\" } })`.",
    );
  }
  const loose = Object.keys(module).filter((k) => !partNames.has(k));
  const hasParts = "options" in module || "config" in module;
  if (hasParts && loose.length > 0) {
    throw new ConfigError(
      `The module in \`${file}' has \`options' or \`config' and also definitions at its top level (${loose.join(", ")}).\n` +
        "Fix: move those definitions into `config`.",
    );
  }
  const imports = module.imports ?? [];
  if (!Array.isArray(imports)) {
    throw new ConfigError(`\`imports' in \`${file}' must be a list of modules.\nFix: write \`imports: [common]'.`);
  }
  const definitions = {};
  for (const key of loose) Object.defineProperty(definitions, key, Object.getOwnPropertyDescriptor(module, key) as PropertyDescriptor);
  const disabledModules = module.disabledModules ?? [];
  if (!Array.isArray(disabledModules)) {
    throw new ConfigError(`\`disabledModules' in \`${file}' must be a list of modules or files.\nFix: write \`disabledModules: [legacy]'.`);
  }
  const parts: SplitModule = { imports, options: module.options, config: hasParts ? module.config : definitions, disabledModules };
  return { ...parts, ...("freeformType" in module ? { freeformType: module.freeformType } : {}), ...("_class" in module ? { _class: module._class } : {}) };
}
