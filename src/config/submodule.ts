// A submodule that is a module, as NixOS's `types.submodule`: each value is
// evaluated like a system, from the submodule's own modules (options, config,
// imports, functions of `{ config, name, lib }`) and every definition of it,
// which merge as modules do. The value at `users.users.alice` is a separate
// evaluation whose options sit at that path, so that every message names the
// whole path; `name` is the value's last name (`alice`).
import { moduleFile, noteFile, splitModule, type ModuleInput } from "./module.js";
import type { EvalArgs, Evaluation } from "./modules.js";
import { isOption, type AnyType, type OptionTree, type Path } from "./option.js";
import { isRecord, nestedAt } from "./tree.js";

/**
 * The module system's evaluation, given by modules.ts when it loads: types.ts
 * (which makes submodules) is loaded before it, by lib.ts, which it needs.
 */
let evaluateModules: ((args: EvalArgs) => Evaluation) | undefined;

export function evaluateSubmodulesWith(evaluate: (args: EvalArgs) => Evaluation): void {
  evaluateModules = evaluate;
}

function evaluate(args: EvalArgs): Evaluation {
  if (evaluateModules === undefined) throw new Error("keel: submodule.ts used before modules.ts was loaded");
  return evaluateModules(args);
}

/** Whether a submodule's argument is a module (a function, or a record with `options`, `config` or `imports`) rather than an option tree. */
export function isModuleForm(value: unknown): boolean {
  if (typeof value === "function") return true;
  if (!isRecord(value)) return false;
  return (
    (isRecord(value.options) && !isOption(value.options)) ||
    ("config" in value && !isOption(value.config)) ||
    Array.isArray(value.imports) ||
    ("freeformType" in value && !isOption(value.freeformType))
  );
}

/**
 * The module's view of the configuration: its own level, found when it is
 * read (a module function is called before the options it declares exist).
 */
function below(config: unknown, path: Path): unknown {
  const node = (): object => path.reduce<unknown>((at, key) => (at as Record<string, unknown>)[key], config) as object;
  return new Proxy(
    {},
    {
      get: (_target, key) => Reflect.get(node(), key),
      has: (_target, key) => Reflect.has(node(), key),
      ownKeys: () => Reflect.ownKeys(node()),
      getOwnPropertyDescriptor: (_target, key) => Reflect.getOwnPropertyDescriptor(node(), key),
    },
  );
}

/** A module function's arguments as the submodule's module sees them: its level of config, the value's name; the rest (lib, specialArgs, _module.args) as given. */
function atLevel(args: Record<string, unknown>, path: Path, name: string): Record<string, unknown> {
  return new Proxy(args, { get: (target, key) => (key === "config" ? below(target.config, path) : key === "name" ? name : Reflect.get(target, key)) });
}

/**
 * `module` with its options and definitions moved to `path` and its functions
 * given the configuration at `path`. Each module is moved once per evaluation
 * (`moved`), so that one imported twice is still included once.
 */
function moveModule(module: ModuleInput, path: Path, name: string, moved: WeakMap<object, ModuleInput>): ModuleInput {
  const done = moved.get(module);
  if (done !== undefined) return done;
  const file = moduleFile(module);
  let result: ModuleInput;
  if (typeof module === "function") {
    const fn = module as (args: Record<string, unknown>) => unknown;
    result = (args: Record<string, unknown>) => moveParts(fn(atLevel(args, path, name)), file, path, name, moved);
  } else {
    result = moveParts(module, file, path, name, moved) as ModuleInput;
  }
  noteFile(result, file);
  moved.set(module, result);
  return result;
}

/** A module's parts moved: imports and disabled modules moved alike, options and definitions nested at `path`. */
function moveParts(module: unknown, file: string | undefined, path: Path, name: string, moved: WeakMap<object, ModuleInput>): unknown {
  const { imports, options, config, disabledModules, ...rest } = splitModule(file ?? "<submodule>", module);
  // What is no module (a file name to disable, a mistake the evaluation names) is passed on as it is.
  const move = (m: unknown) => ((typeof m === "object" && m !== null) || typeof m === "function" ? moveModule(m, path, name, moved) : m);
  return {
    imports: imports.map(move),
    disabledModules: disabledModules.map(move),
    ...(options === undefined ? {} : { options: nestedAt(path, options) }),
    ...rest,
    config: typeof config === "function" ? (args: Record<string, unknown>) => nestConfig(path, (config as (a: unknown) => unknown)(atLevel(args, path, name))) : nestConfig(path, config ?? {}),
  };
}

/** Definitions moved to `path`, but for the module system's own (`_module.freeformType`), which stay at the evaluation's top. */
function nestConfig(path: Path, config: unknown): unknown {
  if (!isRecord(config) || !("_module" in config)) return nestedAt(path, config);
  // A copy without `_module', its getters unread.
  const rest = Object.defineProperties({}, Object.getOwnPropertyDescriptors(config)) as Record<string, unknown>;
  delete rest._module;
  return { _module: config._module, ...(nestedAt(path, rest) as object) };
}

/** How a submodule of modules evaluates its values (NixOS's submoduleWith's arguments). */
export interface SubmoduleSettings {
  /** More arguments for its module functions. */
  readonly specialArgs?: Readonly<Record<string, unknown>>;
  /** Whether a definition is only definitions (types.submodule), or a module that may declare options and import (submoduleWith's default). */
  readonly shorthandOnlyDefinesConfig: boolean;
  /** The class of modules its values take (`"nixos"`): a module of another class is an error. */
  readonly class?: string;
}

/** A submodule type made of `modules`. */
export function moduleSubmodule(modules: readonly ModuleInput[], settings: SubmoduleSettings): AnyType {
  return {
    description: "submodule",
    check: (value) => isRecord(value) || typeof value === "function",
    emptyValue(path) {
      return this.merge(path, []);
    },
    merge: (path, defs) => {
      const name = path[path.length - 1] ?? "";
      const moved = new WeakMap<object, ModuleInput>();
      const definitions = defs.map((def) => {
        // A record is definitions when shorthandOnlyDefinesConfig; a function is always a module.
        if (!settings.shorthandOnlyDefinesConfig || typeof def.value === "function") {
          // A copy to note the file on, its getters unread.
          const module = typeof def.value === "function" ? def.value : Object.defineProperties({}, Object.getOwnPropertyDescriptors(def.value));
          noteFile(module, def.file);
          return moveModule(module, path, name, moved);
        }
        const module = { config: nestedAt(path, def.value) };
        noteFile(module, def.file);
        return module;
      });
      const evaluation = evaluate({
        modules: [...modules.map((m) => moveModule(m, path, name, moved)), ...definitions],
        rootFile: defs[0]?.file ?? "<submodule>",
        name,
        prefix: path,
        ...(settings.specialArgs === undefined ? {} : { specialArgs: settings.specialArgs }),
        ...(settings.class === undefined ? {} : { class: settings.class }),
      });
      return evaluation.resolve(path);
    },
    // For `keel options`: the options the modules declare, as a value named `<name>` sees them.
    get subOptions(): OptionTree | undefined {
      try {
        return evaluate({ modules, rootFile: "<submodule>", name: "<name>" }).tree as OptionTree;
      } catch {
        return undefined;
      }
    },
  };
}
