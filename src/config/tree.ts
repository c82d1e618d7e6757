// Walking a module's definitions against the option tree: properties on whole
// groups are pushed down to the options they reach (as NixOS's
// `pushDownProperties`), getters become thunks, unknown names are errors.
import { ConfigError } from "../errors.js";
import { userCode } from "./blame.js";
import { Thunk, forceValue } from "./merge.js";
import { isOption, type AnyOption, type Definition, type OptionTree, type Path } from "./option.js";
import { mkIf, mkOrder, mkOverride, propertyOf } from "./properties.js";
import { describeValue, optionsCommand, showPath, showValue } from "./show.js";

export interface CollectedOption {
  readonly path: Path;
  readonly defs: Definition[];
}

/** Definitions by option, keyed by `pathKey`. */
export type DefinitionSink = Map<string, CollectedOption>;

export function pathKey(path: Path): string {
  return path.join("\u0000");
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

type Wrap = (value: unknown) => unknown;
const identity: Wrap = (value) => value;

export interface CollectTarget {
  readonly tree: OptionTree;
  /** Where definitions of undeclared names go when the tree may allow them (a freeform type), at any depth. */
  readonly freeform?: Unmatched[];
  /** Told of each definition of a renamed option, in NixOS's words. */
  readonly warn?: (warning: string) => void;
}

/** A definition of a name no option declares: kept for a freeform type, or to be the error. */
export interface Unmatched extends Definition {
  /** Where it is, from the top of the evaluation. */
  readonly path: Path;
  /** The value as written, for the message. */
  readonly written: unknown;
}

/** Unmatched definitions as definitions of one record at `base`: what a freeform type merges. */
export function unmatchedDefinitions(items: readonly Unmatched[], base: number): Definition[] {
  return items.map((item) => ({ file: item.file, value: nestedAt(item.path.slice(base), item.value) }));
}

/** The error for a definition of a name no option declares, with the names it may have meant. */
export function unmatchedError(tree: OptionTree, item: Unmatched): ConfigError {
  let node: OptionTree = tree;
  for (const key of item.path.slice(0, -1)) {
    const child: AnyOption | OptionTree | undefined = node[key];
    if (child === undefined || isOption(child)) break;
    node = child;
  }
  return unknownOption(node, item.path, item.file, item.written);
}

export function collectDefinitions(
  target: CollectTarget,
  value: unknown,
  file: string,
  path: Path,
  sink: DefinitionSink,
): void {
  collect(target.tree, value, file, path, sink, identity, target.freeform, target.warn);
}

/** The error for a definition, or a read, of a removed option. */
export function removedOption(path: Path, message: string, file: string | undefined): ConfigError {
  return new ConfigError(
    `The option \`${showPath(path)}'${file === undefined ? "" : ` defined in \`${file}'`} can no longer be used since it's been removed. ${message}\n` +
      `Fix: ${file === undefined ? "stop reading it" : `remove its definition from \`${file}'`}; the message says what replaces it.`,
  );
}

function collect(
  tree: OptionTree,
  raw: unknown,
  file: string,
  path: Path,
  sink: DefinitionSink,
  wrap: Wrap,
  freeform: Unmatched[] | undefined,
  warn?: (warning: string) => void,
): void {
  const value = forceValue(raw);
  const property = propertyOf(value);
  if (property !== undefined) {
    switch (property._type) {
      case "merge":
        for (const content of property.contents) collect(tree, content, file, path, sink, wrap, freeform, warn);
        return;
      case "if":
        collect(tree, property.content, file, path, sink, (v) => wrap(mkIf(property.condition, v)), freeform, warn);
        return;
      case "override":
        collect(tree, property.content, file, path, sink, (v) => wrap(mkOverride(property.priority, v)), freeform, warn);
        return;
      case "order":
        collect(tree, property.content, file, path, sink, (v) => wrap(mkOrder(property.priority, v)), freeform, warn);
        return;
    }
  }
  if (!isRecord(value)) {
    const where = path.length === 0 ? "A module's configuration" : `\`${showPath(path)}'`;
    throw new ConfigError(
      `${where} is a group of options, but \`${file}' sets it to ${describeValue(value)}.\n` +
        `- In \`${file}': ${showValue(value)}\n` +
        `Fix: set the options inside it instead; ${optionsCommand(path)} lists them.`,
    );
  }
  for (const key of Object.keys(value)) {
    const child = tree[key];
    const childPath = [...path, key];
    if (child === undefined) {
      if (freeform === undefined) throw unknownOption(tree, childPath, file, value[key]);
      freeform.push({ file, path: childPath, value: wrap(value[key]), written: value[key] });
    } else if (isOption(child)) {
      if (isOption(Object.getOwnPropertyDescriptor(value, key)?.value)) throw declaredInConfig(childPath, file);
      const alias = child.alias;
      if (alias?.kind === "removed") throw removedOption(childPath, alias.message, file);
      if (alias?.kind === "renamed") warn?.(`The option \`${showPath(childPath)}' defined in \`${file}' has been renamed to \`${showPath(alias.to ?? [])}'.`);
      record(sink, alias?.to ?? childPath, { file, value: wrap(readLazily(value, key, file, childPath)) });
    } else {
      collect(child, value[key], file, childPath, sink, wrap, freeform, warn);
    }
  }
}

/** A getter on an option's definition is kept unread until the option is merged. */
function readLazily(record: Record<string, unknown>, key: string, file: string, path: Path): unknown {
  const descriptor = Object.getOwnPropertyDescriptor(record, key);
  const getter = descriptor?.get;
  if (getter === undefined) return descriptor?.value;
  return new Thunk(() =>
    userCode(() => getter.call(record), () => `The getter for \`${showPath(path)}' in \`${file}'`, "correct the getter at that line; --debug shows the whole stack."),
  );
}

function record(sink: DefinitionSink, path: Path, def: Definition): void {
  const key = pathKey(path);
  const entry = sink.get(key);
  if (entry) entry.defs.push(def);
  else sink.set(key, { path, defs: [def] });
}

function unknownOption(tree: OptionTree, path: Path, file: string, value: unknown): ConfigError {
  if (isOption(value) || (isRecord(value) && Object.values(value).some(isOption))) return declaredInConfig(path, file);
  const name = path[path.length - 1] ?? "";
  const offers = suggestions(name, Object.keys(tree)).map((s) => showPath([...path.slice(0, -1), s]));
  const hint = offers.length === 0
    ? `Fix: remove it, or declare it under \`options' in a module; ${optionsCommand(path.slice(0, -1))} lists the options that exist.`
    : `${didYouMean(offers)}\nFix: rename it, or declare it under \`options' in a module.`;
  return new ConfigError(
    `The option \`${showPath(path)}' does not exist. Definition values:\n- In \`${file}': ${showValue(value)}\n${hint}`,
  );
}

/** An `mkOption(…)` among definitions: a declaration put in `config` (NixOS's words). */
export function declaredInConfig(path: Path, file: string): ConfigError {
  return new ConfigError(
    `The option \`${showPath(path)}' in \`${file}' is defined with mkOption(…) as its value. ` +
      "It seems as if you're trying to declare an option by placing it into `config' rather than `options'!\n" +
      `Fix: move it into the module's \`options': \`{ options: { ${showPath(path)}: mkOption({ … }) }, config: { … } }\`.`,
  );
}

export function closest(name: string, candidates: readonly string[]): string | undefined {
  return suggestions(name, candidates, 1)[0];
}

/**
 * The names `name` may have meant, nearest first, at most `limit`: those
 * within a few edits, and those it begins (`ena` → `enable`), as NixOS's
 * "Did you mean" offers them.
 */
export function suggestions(name: string, candidates: readonly string[], limit = 3): string[] {
  const lower = name.toLowerCase();
  const within = Math.max(2, Math.floor(name.length / 3));
  const scored: { candidate: string; distance: number }[] = [];
  for (const candidate of new Set(candidates)) {
    if (candidate === name) continue;
    const distance = levenshtein(lower, candidate.toLowerCase());
    const prefix = lower.length >= 2 && candidate.toLowerCase().startsWith(lower);
    if (distance <= within || prefix) scored.push({ candidate, distance: prefix ? Math.min(distance, within) : distance });
  }
  scored.sort((a, b) => a.distance - b.distance || a.candidate.localeCompare(b.candidate));
  return scored.slice(0, limit).map((s) => s.candidate);
}

/** "Did you mean `a'?", "Did you mean `a' or `b'?", "Did you mean `a', `b' or `c'?" — or nothing. */
export function didYouMean(names: readonly string[]): string {
  if (names.length === 0) return "";
  const quoted = names.map((n) => `\`${n}'`);
  return `Did you mean ${quoted.length === 1 ? quoted[0] : `${quoted.slice(0, -1).join(", ")} or ${quoted.at(-1)}`}?`;
}

function levenshtein(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + cost);
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/** Every option in a tree with its path, depth first in declaration order. */
export function* walkOptions(tree: OptionTree, path: Path = []): Generator<[Path, AnyOption]> {
  for (const [key, child] of Object.entries(tree)) {
    if (isOption(child)) yield [[...path, key], child];
    else yield* walkOptions(child, [...path, key]);
  }
}

/** Sets `value` at `path` inside `target`, creating records on the way. */
/** `value` nested at `path`: `["users", "users", "alice"]` gives `{ users: { users: { alice: value } } }`. */
export function nestedAt(path: Path, value: unknown): unknown {
  return path.reduceRight<unknown>((inner, key) => ({ [key]: inner }), value);
}

export function setAtPath(target: Record<string, unknown>, path: Path, value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    let next = node[key];
    if (!isRecord(next)) {
      next = {};
      node[key] = next;
    }
    node = next as Record<string, unknown>;
  }
  const last = path[path.length - 1];
  if (last !== undefined) node[last] = value;
}
