// `lib`, handed to every module function, as NixOS hands `lib` to its modules.
import { mkOption } from "./option.js";
import {
  mkAfter,
  mkBefore,
  mkDefault,
  mkForce,
  mkIf,
  mkMerge,
  mkOptionDefault,
  mkOrder,
  mkOverride,
  orders,
  priorities,
} from "./properties.js";
import { mkAliasOptionModule, mkRemovedOptionModule, mkRenamedOptionModule } from "./rename.js";
import { types } from "./types.js";

export const lib = {
  mkIf,
  mkMerge,
  mkOverride,
  mkOptionDefault,
  mkDefault,
  mkForce,
  mkOrder,
  mkBefore,
  mkAfter,
  mkOption,
  mkRenamedOptionModule,
  mkAliasOptionModule,
  mkRemovedOptionModule,
  types,
  priorities,
  orders,
};
