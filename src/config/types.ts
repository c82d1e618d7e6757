// Option types, after nixpkgs' lib/types.nix: each owns its check and merge.
// Scalars must agree, lists concatenate, records merge per name, submodules
// evaluate their own options from all definitions.
import path from "node:path";
import { ConfigError } from "../errors.js";
import { mergeDefinitions, notDefined, showDefinitions, typeMismatch } from "./merge.js";
import type { AnyType, Definition, DefinitionsOf, OptionTree, OptionType, Path, ResolvedOf } from "./option.js";
import type { Wrapped } from "./properties.js";
import { showPath, showValue } from "./show.js";
import { collectDefinitions, isRecord, pathKey, setAtPath, walkOptions, type DefinitionSink } from "./tree.js";

function isDeepEqual(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => isDeepEqual(x, b[i]));
  if (isRecord(a) && isRecord(b)) {
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length && keys.every((k) => k in b && isDeepEqual(a[k], b[k]));
  }
  return false;
}

/** Scalars merge only when every definition agrees, as NixOS's `mergeEqualOption`. */
function mergeEqual(optionPath: Path, defs: readonly Definition[]): unknown {
  const first = defs[0];
  if (first === undefined) throw notDefined(optionPath);
  if (defs.every((d) => isDeepEqual(d.value, first.value))) return first.value;
  throw new ConfigError(
    `The option \`${showPath(optionPath)}' has conflicting definition values:\n${showDefinitions(defs)}\n` +
      "Fix: use `mkForce(value)` to force one value, or `mkDefault(value)` to lower the priority of the others.",
  );
}

function scalar<T>(description: string, check: (value: unknown) => boolean): OptionType<T> {
  return { description, check, merge: (p, defs) => mergeEqual(p, defs) as T };
}

function nested(type: AnyType): string {
  return type.description.includes(" ") ? `(${type.description})` : type.description;
}

const isInteger = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v);

export const bool = scalar<boolean>("boolean", (v) => typeof v === "boolean");
export const str = scalar<string>("string", (v) => typeof v === "string");
export const int = scalar<number>("integer", isInteger);
export const number = scalar<number>("number", (v) => typeof v === "number" && Number.isFinite(v));
export const port = scalar<number>("port number", (v) => isInteger(v) && v >= 1 && v <= 65535);

export const ints = {
  unsigned: scalar<number>("unsigned integer", (v) => isInteger(v) && v >= 0),
  positive: scalar<number>("positive integer", (v) => isInteger(v) && v > 0),
  between: (min: number, max: number) =>
    scalar<number>(`integer between ${min} and ${max}`, (v) => isInteger(v) && v >= min && v <= max),
};

/** Strings from several definitions joined by newlines, like NixOS's `lines`. */
export const lines: OptionType<string> = {
  description: "lines",
  check: (v) => typeof v === "string",
  merge: (_p, defs) => defs.map((d) => d.value as string).join("\n"),
};

/**
 * A file system path. A relative path is taken from the directory of the file
 * that defines it, so `./fragment.config` means the same wherever it is read.
 */
export const filePath: OptionType<string> = {
  description: "path",
  check: (v) => typeof v === "string" && v.length > 0,
  merge: (p, defs) =>
    mergeEqual(
      p,
      defs.map((d) => ({ file: d.file, value: resolveFrom(d.file, d.value as string) })),
    ) as string,
};

function resolveFrom(file: string, value: string): string {
  return path.isAbsolute(value) || !path.isAbsolute(file) ? value : path.resolve(path.dirname(file), value);
}

function enumOf<const V extends readonly (string | number | boolean)[]>(values: V): OptionType<V[number]> {
  return scalar<V[number]>(`one of ${values.map((v) => JSON.stringify(v)).join(", ")}`, (v) =>
    values.includes(v as V[number]),
  );
}

export function nullOr<R, I>(type: OptionType<R, I>): OptionType<R | null, I | null> {
  return {
    description: `null or ${nested(type)}`,
    check: (v) => v === null || type.check(v),
    merge: (p, defs) => {
      const nulls = defs.filter((d) => d.value === null);
      if (nulls.length === defs.length) return null;
      if (nulls.length === 0) return type.merge(p, defs);
      throw new ConfigError(
        `The option \`${showPath(p)}' is defined both null and not null:\n${showDefinitions(defs)}\n` +
          "Fix: use `mkForce(value)` on the one that should win.",
      );
    },
    subOptions: type.subOptions,
    subPath: type.subPath,
  };
}

/** Definitions of each element go through properties and the element type's merge. */
export function listOf<R, I>(type: OptionType<R, I>): OptionType<readonly R[], readonly Wrapped<I>[]> {
  return {
    description: `list of ${nested(type)}`,
    check: Array.isArray,
    merge: (p, defs) => {
      const result: R[] = [];
      defs.forEach((def, n) => {
        (def.value as unknown[]).forEach((element, m) => {
          const merged = mergeDefinitions([...p, `[definition ${n + 1}, entry ${m + 1}]`], { type }, [{ file: def.file, value: element }]);
          if (merged.defined) result.push(merged.value as R);
        });
      });
      return result;
    },
    subOptions: type.subOptions,
    subPath: ["*", ...(type.subPath ?? [])],
  };
}

export function attrsOf<R, I>(
  type: OptionType<R, I>,
): OptionType<Readonly<Record<string, R>>, Record<string, Wrapped<I>>> {
  return {
    description: `record of ${nested(type)}`,
    check: isRecord,
    merge: (p, defs) => {
      const byName = new Map<string, Definition[]>();
      for (const def of defs) {
        for (const [name, value] of Object.entries(def.value as Record<string, unknown>)) {
          const list = byName.get(name) ?? [];
          list.push({ file: def.file, value });
          byName.set(name, list);
        }
      }
      const result: Record<string, R> = {};
      for (const [name, list] of byName) {
        const merged = mergeDefinitions([...p, name], { type }, list);
        if (merged.defined) result[name] = merged.value as R;
      }
      return result;
    },
    subOptions: type.subOptions,
    subPath: ["<name>", ...(type.subPath ?? [])],
  };
}

/**
 * A record with its own options, merged the way a system's modules are:
 * defaults, priorities and mkIf apply inside it. Names the tree does not
 * declare go to `freeform` when given, and are errors otherwise.
 */
export function submodule<T extends OptionTree>(tree: T): OptionType<ResolvedOf<T>, DefinitionsOf<T>>;
export function submodule<T extends OptionTree, FR, FI>(
  tree: T,
  freeform: OptionType<Readonly<Record<string, FR>>, Record<string, Wrapped<FI>>>,
): OptionType<ResolvedOf<T> & Readonly<Record<string, FR>>, DefinitionsOf<T> & Record<string, Wrapped<FI>>>;
export function submodule(tree: OptionTree, freeform?: AnyType): AnyType {
  return {
    description: "submodule",
    check: isRecord,
    merge: (p, defs) => {
      const sink: DefinitionSink = new Map();
      const leftover: Definition[] | undefined = freeform ? [] : undefined;
      for (const def of defs) collectDefinitions({ tree, freeform: leftover }, def.value, def.file, p, sink);
      const result: Record<string, unknown> = {};
      if (freeform && leftover && leftover.length > 0) {
        const merged = mergeDefinitions(p, { type: freeform }, leftover);
        if (merged.defined) Object.assign(result, merged.value);
      }
      for (const [relative, option] of walkOptions(tree)) {
        const full = [...p, ...relative];
        const merged = mergeDefinitions(full, option, sink.get(pathKey(full))?.defs ?? []);
        if (!merged.defined) throw notDefined(full);
        setAtPath(result, relative, merged.value);
      }
      return result;
    },
    subOptions: tree,
  };
}

/** Why `checked` refuses a value: a clause completing "A definition for option `x'", and the fix. */
export interface Refusal {
  readonly problem: string;
  readonly fix: string;
}

/**
 * `type` with a further check of each definition, as NixOS's `addCheck`, that
 * says what is wrong: a refused value is an error naming the option, the file
 * that defined it and the fix.
 */
export function checked<R, I>(
  type: OptionType<R, I>,
  refuse: (value: I, where: { readonly option: string; readonly file: string }) => Refusal | undefined,
  description: string = type.description,
): OptionType<R, I> {
  return {
    ...type,
    description,
    merge: (p, defs) => {
      for (const def of defs) {
        const refusal = refuse(def.value as I, { option: showPath(p), file: def.file });
        if (refusal !== undefined) {
          throw new ConfigError(
            `A definition for option \`${showPath(p)}' ${refusal.problem}\n- In \`${def.file}': ${showValue(def.value)}\nFix: ${refusal.fix}`,
          );
        }
      }
      return type.merge(p, defs);
    },
  };
}

/** A character as a refusal names it: "a space", "a line break", or quoted. */
export function describeCharacter(character: string): string {
  if (character === " ") return "a space";
  if (character === "\n") return "a line break";
  return /\p{Cc}/u.test(character) ? `the control character ${JSON.stringify(character)}` : `"${character}"`;
}

/** The first of `types` that accepts every definition merges them. */
export function oneOf<const T extends readonly AnyType[]>(
  types: T,
): OptionType<NonNullable<T[number]["_resolved"]>, NonNullable<T[number]["_input"]>> {
  return {
    description: types.map(nested).join(" or "),
    check: (v) => types.some((t) => t.check(v)),
    merge: (p, defs) => {
      const type = types.find((t) => defs.every((d) => t.check(d.value)));
      const first = defs[0];
      if (type === undefined) {
        if (first === undefined) throw notDefined(p);
        throw typeMismatch(p, types[0] as AnyType, first);
      }
      return type.merge(p, defs) as NonNullable<T[number]["_resolved"]>;
    },
  };
}

/** Any JSON-like value: records merge per name, anything else must agree. */
export const anything: OptionType<unknown> = {
  description: "anything",
  check: () => true,
  merge: (p, defs) => {
    // Records merge per name even when there is one, so that properties inside them (mkDefault, mkIf) are discharged.
    if (defs.every((d) => isRecord(d.value))) return attrsOf(anything).merge(p, defs);
    return mergeEqual(p, defs);
  },
};

/**
 * A string `problem` accepts (it returns undefined), like NixOS's `strMatching`:
 * a definition it refuses is an error naming the option, the file and why.
 */
export function strWith(description: string, problem: (value: string) => string | undefined): OptionType<string> {
  return checked(
    str,
    (value, { option, file }) => {
      const why = problem(value);
      return why === undefined ? undefined : { problem: `is not of type \`${description}': it ${why}.`, fix: `give \`${option}' a value of type \`${description}' in \`${file}'.` };
    },
    description,
  );
}

/** A string without line breaks: what a line of a generated file can hold as one value. */
export const singleLineStr = strWith("single-line string", (v) => (/[\n\r]/.test(v) ? "holds a line break" : undefined));

/**
 * A record whose names `problem` accepts (a unit name, a path inside /etc): a
 * name it refuses is an error naming the option, the defining file and why.
 */
export function attrsNamed<R, I>(
  name: { readonly description: string; readonly problem: (name: string) => string | undefined },
  type: OptionType<R, I>,
): OptionType<Readonly<Record<string, R>>, Record<string, Wrapped<I>>> {
  const records = attrsOf(type);
  return {
    ...records,
    merge: (p, defs) => {
      for (const def of defs) {
        for (const key of Object.keys(def.value as Record<string, unknown>)) {
          const why = name.problem(key);
          if (why === undefined) continue;
          throw new ConfigError(
            `The name ${JSON.stringify(key)} in \`${showPath(p)}' is not ${name.description}: it ${why}.\n- In \`${def.file}'\n` +
              `Fix: use ${name.description} in \`${def.file}'.`,
          );
        }
      }
      return records.merge(p, defs);
    },
  };
}

export const types = {
  bool,
  str,
  lines,
  singleLineStr,
  strWith,
  int,
  ints,
  number,
  port,
  path: filePath,
  enum: enumOf,
  nullOr,
  listOf,
  attrsOf,
  attrsNamed,
  submodule,
  oneOf,
  anything,
  checked,
};
