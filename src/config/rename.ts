// Options that moved or went away, as NixOS's mkRenamedOptionModule,
// mkAliasOptionModule and mkRemovedOptionModule: each is a module declaring
// the old name as an alias (option.ts's OptionAlias). A definition of a
// renamed option goes to the new one with a warning naming both and the file;
// an alias forwards silently; a removed option's definition is an error with
// the replacement instructions. Reading the old name reads the new one.
import { types } from "./types.js";
import { mkOption, type OptionAlias, type OptionTree, type Path } from "./option.js";
import { showPath } from "./show.js";
import { nestedAt } from "./tree.js";

/** A path as NixOS writes it (a list of names) or dotted. */
const pathOf = (path: string | Path): Path => (typeof path === "string" ? path.split(".") : path);

function aliasModule(from: string | Path, alias: OptionAlias, description: string): { options: OptionTree } {
  const option = mkOption({ type: types.anything, description });
  option.alias = alias;
  return { options: nestedAt(pathOf(from), option) as OptionTree };
}

/** `from` is now `to`: definitions of `from` go to `to`, with a warning. */
export function mkRenamedOptionModule(from: string | Path, to: string | Path): { options: OptionTree } {
  return aliasModule(from, { kind: "renamed", to: pathOf(to), message: "" }, `Renamed to \`${showPath(pathOf(to))}'.`);
}

/** `from` is another name for `to`: definitions and reads forward, without a warning. */
export function mkAliasOptionModule(from: string | Path, to: string | Path): { options: OptionTree } {
  return aliasModule(from, { kind: "alias", to: pathOf(to), message: "" }, `Alias of \`${showPath(pathOf(to))}'.`);
}

/** `from` is gone: a definition of it is an error that says `replacementInstructions`. */
export function mkRemovedOptionModule(from: string | Path, replacementInstructions: string): { options: OptionTree } {
  return aliasModule(from, { kind: "removed", to: undefined, message: replacementInstructions }, `Removed: ${replacementInstructions}`);
}
