// What a keel.config.ts imports.
export { defineModule } from "./config/module.js";
export type { Definitions, Lib, ModuleArgs, ModuleFunction, ModuleInput, ModuleObject } from "./config/module.js";
export { defineProject } from "./config/project.js";
export type { ProjectSpec, ResolvedSystem } from "./config/project.js";
export { lib } from "./config/lib.js";
export { mkOption } from "./config/option.js";
export { mkAliasOptionModule, mkRemovedOptionModule, mkRenamedOptionModule } from "./config/rename.js";
export type { DefinitionsOf, Option, OptionTree, OptionType, ResolvedOf } from "./config/option.js";
export {
  mkAfter,
  mkBefore,
  mkDefault,
  mkForce,
  mkIf,
  mkMerge,
  mkOptionDefault,
  mkOrder,
  mkOverride,
} from "./config/properties.js";
export { types } from "./config/types.js";
export type { InputSpec } from "./inputs/spec.js";
export type { BuiltinOptions } from "./options/index.js";
