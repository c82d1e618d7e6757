// Option types, after nixpkgs' lib/types.nix: each owns its check and merge.
// Scalars must agree, lists concatenate, records merge per name, submodules
// evaluate their own options from all definitions.
import path from "node:path";
import { ConfigError } from "../errors.js";
import { mergeDefinitions, mergeLater, notDefined, showDefinitions, Thunk, typeMismatch } from "./merge.js";
import { isOption, mkOption, type AnyOption, type AnyType, type Definition, type DefinitionsOf, type Option, type OptionSpec, type OptionTree, type OptionType, type Path, type ResolvedOf } from "./option.js";
import type { Wrapped } from "./properties.js";
import { noteFile, type Lib, type ModuleInput } from "./module.js";
import { showPath, showValue } from "./show.js";
import { isModuleForm, moduleSubmodule, type SubmoduleSettings } from "./submodule.js";
import { collectDefinitions, isRecord, pathKey, setAtPath, unmatchedDefinitions, walkOptions, type DefinitionSink, type Unmatched } from "./tree.js";

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

/**
 * How a type was made, for merging two declarations of one option (NixOS's
 * `typeMerge` over type functors): its kind, the types it was made of, and how
 * to make it again from merged ones. Scalars merge when they are the same
 * kind (description), submodules by joining their option trees.
 */
interface Functor {
  readonly kind: string;
  readonly of: readonly AnyType[];
  readonly make: (of: readonly AnyType[]) => AnyType;
  readonly join?: (other: AnyType) => AnyType | undefined;
  /** A record's placeholder for its names in docs (attrsWith's): `name` unless set. */
  readonly placeholder?: string;
}

const functors = new WeakMap<AnyType, Functor>();

function made<T extends AnyType>(type: T, functor: Functor): T {
  functors.set(type, functor);
  return type;
}

/**
 * Two declarations of one option as one, as NixOS's `mergeOptionDecls`: at
 * most one gives a default, an example or a description, and their types
 * merge. Otherwise, why not.
 */
export function mergeOptionDeclarations(a: AnyOption, b: AnyOption): AnyOption | string {
  if (a.hasDefault && b.hasDefault) return "both declare a default";
  if (a.example !== undefined && b.example !== undefined) return "both give an example";
  if (a.description !== "" && b.description !== "") return "both give a description (the second declaration of an option extends it and leaves its description out)";
  const type = mergeTypes(a.type, b.type);
  if (type === undefined) return `their types do not merge: \`${a.type.description}' and \`${b.type.description}'`;
  const withDefault = a.hasDefault ? a : b;
  const spec: OptionSpec<unknown, unknown> = {
    type,
    description: a.description || b.description,
    example: a.example ?? b.example,
    ...((a.defaultText ?? b.defaultText) !== undefined ? { defaultText: a.defaultText ?? b.defaultText } : {}),
  };
  // A computed default stays unread: a getter reading config.
  if (withDefault.hasDefault) {
    Object.defineProperty(spec, "default", withDefault.computedDefault ? { get: () => withDefault.default, enumerable: true } : { value: withDefault.default, enumerable: true });
  }
  const merged = mkOption(spec);
  merged.declaredIn = a.declaredIn;
  return merged;
}

/**
 * An option of submodule type with more options declared under it by another
 * module (`options.site.port = mkOption(…)` next to `options.site = mkOption({ type: submodule(…) })`),
 * as NixOS takes nested declarations into a submodule; undefined when its type is no submodule.
 */
export function withNestedOptions(option: AnyOption, tree: OptionTree, file: string): AnyOption | undefined {
  if (functors.get(option.type)?.kind !== "submodule") return undefined;
  const declaring = { options: tree };
  noteFile(declaring, file);
  const settings = submoduleModules.get(option.type)?.settings;
  // A second declaration of the option with just the submodule of those options: merged as any other.
  const extended = mergeOptionDeclarations(option, mkOption({ type: settings === undefined ? submodule(declaring) : ofModules([declaring], settings) }));
  return typeof extended === "string" ? undefined : extended;
}

/** Two trees of declarations as one: options declared in both merge (`mergeOptionDeclarations`), groups merge by name. */
export function mergeOptionTrees(a: OptionTree, b: OptionTree, path: Path = []): OptionTree | string {
  const result: Record<string, AnyOption | OptionTree> = { ...a };
  for (const [key, theirs] of Object.entries(b)) {
    const ours = result[key];
    if (ours === undefined) {
      result[key] = theirs;
      continue;
    }
    if (isOption(ours) !== isOption(theirs)) return `\`${showPath([...path, key])}' is an option in one and a group of options in the other`;
    const merged = isOption(ours) ? mergeOptionDeclarations(ours, theirs as AnyOption) : mergeOptionTrees(ours, theirs as OptionTree, [...path, key]);
    if (typeof merged === "string") return isOption(ours) ? `\`${showPath([...path, key])}': ${merged}` : merged;
    result[key] = merged;
  }
  return result;
}

/** Two declarations' types as one, or undefined when they do not merge. */
export function mergeTypes(a: AnyType, b: AnyType): AnyType | undefined {
  if (a === b) return a;
  const fa = functors.get(a);
  const fb = functors.get(b);
  if (fa === undefined || fb === undefined || fa.kind !== fb.kind || fa.of.length !== fb.of.length) return undefined;
  if (fa.join !== undefined) return fa.join(b);
  const of: AnyType[] = [];
  for (const [i, inner] of fa.of.entries()) {
    const merged = mergeTypes(inner, fb.of[i] as AnyType);
    if (merged === undefined) return undefined;
    of.push(merged);
  }
  return of.every((t, i) => t === fa.of[i]) ? a : fa.make(of);
}

function scalar<T>(description: string, check: (value: unknown) => boolean): OptionType<T> {
  const type: OptionType<T> = { description, check, merge: (p, defs) => mergeEqual(p, defs) as T };
  return made(type as AnyType, { kind: `scalar ${description}`, of: [], make: () => type as AnyType }) as OptionType<T>;
}

function nested(type: AnyType): string {
  return type.description.includes(" ") ? `(${type.description})` : type.description;
}

const isInteger = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v);

export const bool = scalar<boolean>("boolean", (v) => typeof v === "boolean");
/** A boolean that any module may turn on, as NixOS's `boolByOr`: definitions merge by or, so true and false is true. */
export const boolByOr: OptionType<boolean> = made(
  { description: "boolean (merged using or)", check: (v) => typeof v === "boolean", merge: (_p, defs) => defs.some((d) => d.value === true) },
  { kind: "boolByOr", of: [], make: () => boolByOr as AnyType },
);
export const str = scalar<string>("string", (v) => typeof v === "string");
export const int = scalar<number>("integer", isInteger);
export const number = scalar<number>("number", (v) => typeof v === "number" && Number.isFinite(v));
export const port = scalar<number>("port number", (v) => isInteger(v) && v >= 1 && v <= 65535);

export const ints = {
  unsigned: scalar<number>("unsigned integer", (v) => isInteger(v) && v >= 0),
  positive: scalar<number>("positive integer", (v) => isInteger(v) && v > 0),
  between: (min: number, max: number) => intBetween(min, max),
  s8: intBetween(-128, 127, "8 bit signed integer"),
  s16: intBetween(-32768, 32767, "16 bit signed integer"),
  s32: intBetween(-2147483648, 2147483647, "32 bit signed integer"),
  u8: intBetween(0, 255, "8 bit unsigned integer"),
  u16: intBetween(0, 65535, "16 bit unsigned integer"),
  u32: intBetween(0, 4294967295, "32 bit unsigned integer"),
};

/** An integer in [min, max], described as NixOS describes it. */
function intBetween(min: number, max: number, name?: string): OptionType<number> {
  const range = `between ${min} and ${max} (both inclusive)`;
  return scalar<number>(name === undefined ? `integer ${range}` : `${name}; ${range}`, (v) => isInteger(v) && v >= min && v <= max);
}

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
  return made(nullOrType(type) as AnyType, { kind: "nullOr", of: [type as AnyType], make: ([t]) => nullOr(t as AnyType) as AnyType }) as OptionType<R | null, I | null>;
}

function nullOrType<R, I>(type: OptionType<R, I>): OptionType<R | null, I | null> {
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
    emptyValue: () => null,
    subOptions: type.subOptions,
    subPath: type.subPath,
  };
}

/** Definitions of each element go through properties and the element type's merge. */
export function listOf<R, I>(type: OptionType<R, I>): OptionType<readonly R[], readonly Wrapped<I>[]> {
  return made(listType(type) as AnyType, { kind: "listOf", of: [type as AnyType], make: ([t]) => listOf(t as AnyType) as AnyType }) as OptionType<readonly R[], readonly Wrapped<I>[]>;
}

function listType<R, I>(type: OptionType<R, I>): OptionType<readonly R[], readonly Wrapped<I>[]> {
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
    emptyValue: () => [],
    subOptions: type.subOptions,
    subPath: ["*", ...(type.subPath ?? [])],
  };
}

/** Each name's definitions across the records `defs` define, in order; a getter stays unread (a thunk) until its name is merged. */
function definitionsByName(defs: readonly Definition[]): Map<string, Definition[]> {
  const byName = new Map<string, Definition[]>();
  for (const def of defs) {
    const record = def.value as Record<string, unknown>;
    for (const name of Object.keys(record)) {
      const getter = Object.getOwnPropertyDescriptor(record, name)?.get;
      const list = byName.get(name) ?? [];
      list.push({ file: def.file, value: getter === undefined ? record[name] : new Thunk(() => getter.call(record)) });
      byName.set(name, list);
    }
  }
  return byName;
}

export function attrsOf<R, I>(type: OptionType<R, I>): OptionType<Readonly<Record<string, R>>, Record<string, Wrapped<I>>> {
  return attrsWith({ elemType: type });
}

/**
 * A record of `elemType`, as NixOS's `attrsWith`: `lazy` merges each value
 * only when read (lazyAttrsOf), `placeholder` names its names in docs
 * (`<id>` for "id"). Two declarations merge when their laziness is the same
 * and at most one sets a placeholder other than "name".
 */
export function attrsWith<R, I>(settings: {
  readonly elemType: OptionType<R, I>;
  readonly lazy?: boolean;
  readonly placeholder?: string;
}): OptionType<Readonly<Record<string, R>>, Record<string, Wrapped<I>>> {
  const { elemType, lazy = false, placeholder = "name" } = settings;
  const records = lazy ? lazyAttrsType(elemType, placeholder) : attrsType(elemType, placeholder);
  return made(records as AnyType, {
    kind: lazy ? "lazyAttrsOf" : "attrsOf",
    of: [elemType as AnyType],
    make: ([t]) => attrsWith({ elemType: t as AnyType, lazy, placeholder }) as AnyType,
    placeholder,
    join: (other) => {
      const theirs = functors.get(other);
      const named = new Set([placeholder, theirs?.placeholder ?? "name"].filter((p) => p !== "name"));
      const elem = mergeTypes(elemType as AnyType, theirs?.of[0] as AnyType);
      if (named.size > 1 || elem === undefined) return undefined;
      const [merged = "name"] = named;
      return elem === elemType && merged === placeholder ? (records as AnyType) : (attrsWith({ elemType: elem, lazy, placeholder: merged }) as AnyType);
    },
  }) as typeof records;
}

function attrsType<R, I>(
  type: OptionType<R, I>,
  placeholder: string,
): OptionType<Readonly<Record<string, R>>, Record<string, Wrapped<I>>> {
  return {
    description: `record of ${nested(type)}`,
    check: isRecord,
    // Which names are defined is known at once (mkIf discharged); each value is merged when it is read.
    merge: (p, defs) => {
      const result: Record<string, R> = {};
      for (const [name, list] of definitionsByName(defs)) {
        const merge = mergeLater([...p, name], { type }, list);
        if (merge !== undefined) Object.defineProperty(result, name, { enumerable: true, get: merge });
      }
      return result;
    },
    emptyValue: () => ({}),
    subOptions: type.subOptions,
    subPath: [`<${placeholder}>`, ...(type.subPath ?? [])],
  };
}

/** What a submodule's module sees: its own level of the configuration, and `name`, the value's last name (`alice` in `users.users.alice`). */
export interface SubmoduleArgs<T extends OptionTree> {
  readonly config: ResolvedOf<T>;
  readonly name: string;
  readonly lib: Lib;
}

/** A submodule written as a module: `options` and `config` (or definitions), `imports`, or a function of `{ config, name, lib }` returning them. */
export type SubmoduleModule<T extends OptionTree> =
  | {
      readonly options: T;
      readonly config?: DefinitionsOf<T> | ((args: SubmoduleArgs<T>) => DefinitionsOf<T>);
      readonly imports?: readonly ModuleInput[];
      readonly freeformType?: AnyType;
    }
  | ((args: SubmoduleArgs<T>) => { readonly options: T; readonly config?: DefinitionsOf<T>; readonly imports?: readonly ModuleInput[] });

/**
 * A record with its own options, merged the way a system's modules are:
 * defaults, priorities and mkIf apply inside it. Names the tree does not
 * declare go to `freeform` when given, and are errors otherwise.
 */
export function submodule<T extends OptionTree>(module: SubmoduleModule<T>): OptionType<ResolvedOf<T>, DefinitionsOf<T>>;
export function submodule<T extends OptionTree>(tree: T): OptionType<ResolvedOf<T>, DefinitionsOf<T>>;
export function submodule<T extends OptionTree, FR, FI>(
  tree: T,
  freeform: OptionType<Readonly<Record<string, FR>>, Record<string, Wrapped<FI>>>,
): OptionType<ResolvedOf<T> & Readonly<Record<string, FR>>, DefinitionsOf<T> & Record<string, Wrapped<FI>>>;
export function submodule(x: OptionTree | SubmoduleModule<OptionTree>, freeform?: AnyType): AnyType {
  if (isModuleForm(x)) return ofModules([x], { shorthandOnlyDefinesConfig: true });
  const tree = x as OptionTree;
  const type = submoduleType(tree, freeform);
  return made(type, { kind: "submodule", of: [], make: () => type, join: (other) => joinSubmodules(type, other) });
}

/** A submodule of modules (submodule.ts), registered for declaration merging. */
function ofModules(modules: readonly ModuleInput[], settings: SubmoduleSettings): AnyType {
  const type = moduleSubmodule(modules, settings);
  submoduleModules.set(type, { modules, settings });
  return made(type, { kind: "submodule", of: [], make: () => type, join: (other) => joinSubmodules(type, other) });
}

/**
 * NixOS's `submoduleWith`: a submodule of `modules`, whose module functions
 * also get `specialArgs`, and whose definitions are modules themselves (they
 * may declare options and import) unless `shorthandOnlyDefinesConfig`.
 */
export function submoduleWith<T extends OptionTree = OptionTree>(settings: {
  readonly modules: readonly ModuleInput[];
  readonly specialArgs?: Readonly<Record<string, unknown>>;
  readonly shorthandOnlyDefinesConfig?: boolean;
  readonly class?: string;
}): OptionType<ResolvedOf<T> & Readonly<Record<string, unknown>>, DefinitionsOf<T> & Record<string, unknown>> {
  return ofModules(settings.modules, {
    shorthandOnlyDefinesConfig: settings.shorthandOnlyDefinesConfig ?? false,
    ...(settings.specialArgs === undefined ? {} : { specialArgs: settings.specialArgs }),
    ...(settings.class === undefined ? {} : { class: settings.class }),
  }) as OptionType<ResolvedOf<T> & Readonly<Record<string, unknown>>, DefinitionsOf<T> & Record<string, unknown>>;
}

/** The tree and freeform type each submodule type of an option tree was made of. */
const submodules = new WeakMap<AnyType, { readonly tree: OptionTree; readonly freeform: AnyType | undefined }>();

/** The modules each submodule type of modules was made of, and how it evaluates them. */
const submoduleModules = new WeakMap<AnyType, { readonly modules: readonly ModuleInput[]; readonly settings: SubmoduleSettings }>();

/**
 * Two submodule types declared for one option as one: option trees joined
 * (with their freeform types, which must merge), or, when either is made of
 * modules, the modules of both (a tree is the module `{ options: tree }`).
 */
function joinSubmodules(a: AnyType, b: AnyType): AnyType | undefined {
  const trees = [submodules.get(a), submodules.get(b)];
  const [ta, tb] = trees;
  if (ta !== undefined && tb !== undefined) {
    const free = ta.freeform === undefined ? tb.freeform : tb.freeform === undefined ? ta.freeform : mergeTypes(ta.freeform, tb.freeform);
    if (free === undefined && (ta.freeform ?? tb.freeform) !== undefined) return undefined;
    const joined = mergeOptionTrees(ta.tree, tb.tree);
    return typeof joined === "string" ? undefined : free === undefined ? submodule(joined) : submodule(joined, free as OptionType<Readonly<Record<string, unknown>>, Record<string, unknown>>);
  }
  const shorthand: SubmoduleSettings = { shorthandOnlyDefinesConfig: true };
  const modulesOf = (type: AnyType, tree: (typeof trees)[number]) =>
    submoduleModules.get(type) ?? (tree !== undefined && tree.freeform === undefined ? { modules: [{ options: tree.tree }], settings: shorthand } : undefined);
  const ma = modulesOf(a, ta);
  const mb = modulesOf(b, tb);
  // Joined when they evaluate alike: the same reading of definitions, the same special arguments.
  if (ma === undefined || mb === undefined || ma.settings.shorthandOnlyDefinesConfig !== mb.settings.shorthandOnlyDefinesConfig) return undefined;
  if (ma.settings.specialArgs !== mb.settings.specialArgs && ma.settings.specialArgs !== undefined && mb.settings.specialArgs !== undefined) return undefined;
  if (ma.settings.class !== undefined && mb.settings.class !== undefined && ma.settings.class !== mb.settings.class) return undefined;
  const specialArgs = ma.settings.specialArgs ?? mb.settings.specialArgs;
  const cls = ma.settings.class ?? mb.settings.class;
  return ofModules([...ma.modules, ...mb.modules], { ...ma.settings, ...(specialArgs === undefined ? {} : { specialArgs }), ...(cls === undefined ? {} : { class: cls }) });
}

function submoduleType(tree: OptionTree, freeform: AnyType | undefined): AnyType {
  const type = submoduleMerging(tree, freeform);
  submodules.set(type, { tree, freeform });
  return type;
}

function submoduleMerging(tree: OptionTree, freeform: AnyType | undefined): AnyType {
  let asModules: AnyType | undefined;
  return {
    description: "submodule",
    // A function is a module (NixOS's submodules take one), which may declare more options: evaluated as modules.
    check: (value) => isRecord(value) || typeof value === "function",
    emptyValue(path) {
      return this.merge(path, []);
    },
    merge: (p, defs) => {
      if (defs.some((d) => typeof d.value === "function")) {
        asModules ??= ofModules([{ options: tree, ...(freeform === undefined ? {} : { freeformType: freeform }) }], { shorthandOnlyDefinesConfig: true });
        return asModules.merge(p, defs);
      }
      const sink: DefinitionSink = new Map();
      const leftover: Unmatched[] | undefined = freeform ? [] : undefined;
      for (const def of defs) collectDefinitions({ tree, freeform: leftover }, def.value, def.file, p, sink);
      const result: Record<string, unknown> = {};
      if (freeform && leftover && leftover.length > 0) {
        const merged = mergeDefinitions(p, { type: freeform }, unmatchedDefinitions(leftover, p.length));
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

/** A string the pattern matches whole, as NixOS's `strMatching` (the pattern is anchored: `[a-z]+` refuses "ab1"). */
export function strMatching(pattern: string | RegExp): OptionType<string> {
  const source = typeof pattern === "string" ? pattern : pattern.source;
  const whole = new RegExp(`^(?:${source})$`, typeof pattern === "string" ? "" : pattern.flags.replace("g", ""));
  return strWith(`string matching the pattern ${source}`, (v) => (whole.test(v) ? undefined : "does not match"));
}

/** A list that no definition leaves empty, as NixOS's `nonEmptyListOf`. */
export function nonEmptyListOf<R, I>(type: OptionType<R, I>): OptionType<readonly R[], readonly Wrapped<I>[]> {
  const list = listOf(type);
  // An empty list is no value of it: no empty value either.
  const { emptyValue: _, ...nonEmpty } = checked(
    list,
    (value, { option, file }) =>
      value.length > 0 ? undefined : { problem: `is not of type \`non-empty (${list.description})': it is an empty list.`, fix: `give \`${option}' at least one element in \`${file}'.` },
    `non-empty (${list.description})`,
  );
  return nonEmpty;
}

/**
 * `type`, defined by one module only, as NixOS's `unique { message }`: a
 * second definition is an error listing both, with `message`.
 */
export function unique<R, I>(options: { readonly message: string }, type: OptionType<R, I>): OptionType<R, I> {
  return {
    ...type,
    merge: (p, defs) => {
      if (defs.length > 1) {
        throw new ConfigError(
          `The option \`${showPath(p)}' is defined multiple times while it's expected to be unique.\n${options.message ? `${options.message}\n` : ""}` +
            `Definition values:\n${showDefinitions(defs)}\nFix: define it in one module, or use \`mkForce(value)\` on the one that should win.`,
        );
      }
      return type.merge(p, defs);
    },
  };
}

/**
 * Any one value, taken as it is: not merged, not looked into (records stay
 * unread), as NixOS's `types.raw`; two definitions of it are an error.
 */
export const raw: OptionType<unknown> = unique({ message: "" }, { description: "raw value", check: () => true, merge: (_p, defs) => defs[0]?.value });

/**
 * Values of `to`, or of `from` converted by `coerce`, as NixOS's
 * `coercedTo`: `coercedTo(types.str, (s) => [s], types.listOf(types.str))`.
 */
export function coercedTo<FR, FI, R, I>(from: OptionType<FR, FI>, coerce: (value: FR) => NoInfer<I>, to: OptionType<R, I>): OptionType<R, I | FI> {
  return {
    description: `${nested(to)} or ${nested(from)} convertible to it`,
    check: (v) => to.check(v) || from.check(v),
    merge: (p, defs) => {
      const converted = defs.map((def) => {
        if (to.check(def.value) || !from.check(def.value)) return def;
        const value = coerce(from.merge(p, [def]));
        // A converted value `to` refuses is named as it was written.
        if (!to.check(value)) throw typeMismatch(p, to, def);
        return { file: def.file, value };
      });
      return to.merge(p, converted);
    },
    ...(to.emptyValue === undefined ? {} : { emptyValue: (p: Path) => (to.emptyValue as (p: Path) => R)(p) }),
    subOptions: to.subOptions,
    subPath: to.subPath,
  };
}

/**
 * A function whose results are merged as `type`, as NixOS's `functionTo`:
 * each definition is a function; the option's value calls all of them with
 * the same arguments and merges what they return.
 */
export function functionTo<R, I>(type: OptionType<R, I>): OptionType<(...args: never[]) => R, (...args: never[]) => Wrapped<I>> {
  const functions: OptionType<(...args: never[]) => R, (...args: never[]) => Wrapped<I>> = {
    description: `function that evaluates to a(n) ${nested(type)}`,
    check: (v) => typeof v === "function",
    merge: (p, defs) =>
      (...args: never[]) => {
        const results = defs.map((d) => ({ file: d.file, value: (d.value as (...a: never[]) => unknown)(...args) }));
        const merged = mergeDefinitions([...p, "<function body>"], { type }, results);
        if (!merged.defined) throw notDefined(p);
        return merged.value as R;
      },
  };
  return made(functions as AnyType, { kind: "functionTo", of: [type as AnyType], make: ([t]) => functionTo(t as AnyType) as AnyType }) as typeof functions;
}

/**
 * A record whose values are merged when read, as NixOS's `lazyAttrsOf`: a
 * name whose definitions are all `mkIf(false, …)` is present, and reads as
 * the type's empty value (`[]` for a list), or is the error "used but not
 * defined" if it has none; reading one name does not merge the others.
 */
export function lazyAttrsOf<R, I>(type: OptionType<R, I>): OptionType<Readonly<Record<string, R>>, Record<string, Wrapped<I>>> {
  return attrsWith({ elemType: type, lazy: true });
}

function lazyAttrsType<R, I>(type: OptionType<R, I>, placeholder: string): OptionType<Readonly<Record<string, R>>, Record<string, Wrapped<I>>> {
  const records = attrsType(type, placeholder);
  return {
    ...records,
    description: `lazy attribute set of ${nested(type)}`,
    merge: (p, defs) => {
      const result: Record<string, R> = {};
      for (const [name, list] of definitionsByName(defs)) {
        let merged: { value: R } | undefined;
        Object.defineProperty(result, name, {
          enumerable: true,
          get: () => {
            if (merged === undefined) {
              const value = mergeDefinitions([...p, name], { type }, list);
              if (value.defined) merged = { value: value.value as R };
              else if (type.emptyValue !== undefined) merged = { value: type.emptyValue([...p, name]) };
              else throw notDefined([...p, name]);
            }
            return merged.value;
          },
        });
      }
      return result;
    },
  };
}

/** The value of an `attrTag` option: one tag and what it holds. */
export type Tagged<T extends Record<string, AnyOption>> = { [K in keyof T]: { readonly [P in K]: T[K] extends Option<infer R, unknown> ? R : never } }[keyof T];

/**
 * A record with exactly one of the names in `tags`, its value of that tag's
 * option type, as NixOS's `attrTag`: `types.attrTag({ file: mkOption({ type:
 * types.path, description }), text: mkOption({ type: types.str, description }) })`.
 */
export function attrTag<const T extends Record<string, AnyOption>>(
  tags: T,
): OptionType<Tagged<T>, { [K in keyof T]: { [P in K]: T[K] extends Option<unknown, infer I> ? Wrapped<I> : never } }[keyof T]> {
  const names = Object.keys(tags);
  const description = `attribute-tagged union with choices: ${names.join(", ")}`;
  return {
    description,
    check: (v) => isRecord(v) && Object.keys(v).length === 1 && names.includes(Object.keys(v)[0] ?? ""),
    merge: (p, defs) => {
      const tagOf = (d: Definition) => Object.keys(d.value as Record<string, unknown>)[0] as string;
      const tag = tagOf(defs[0] as Definition);
      const other = defs.find((d) => tagOf(d) !== tag);
      if (other !== undefined) {
        throw new ConfigError(
          `The option \`${showPath(p)}' is defined with more than one tag (${tag}, ${tagOf(other)}): an attribute-tagged union holds one.\n${showDefinitions(defs)}\n` +
            "Fix: define one of the tags, or use `mkForce(value)` on the definition that should win.",
        );
      }
      const option = tags[tag] as AnyOption;
      const merged = mergeDefinitions([...p, tag], option, defs.map((d) => ({ file: d.file, value: (d.value as Record<string, unknown>)[tag] })));
      if (!merged.defined) throw notDefined([...p, tag]);
      return { [tag]: merged.value } as Tagged<T>;
    },
  };
}

/** Either of two types: the first that accepts every definition, as NixOS's `either`. */
export function either<AR, AI, BR, BI>(a: OptionType<AR, AI>, b: OptionType<BR, BI>): OptionType<AR | BR, AI | BI> {
  return oneOf([a, b]) as OptionType<AR | BR, AI | BI>;
}

export const types = {
  raw,
  bool,
  boolByOr,
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
  submoduleWith,
  oneOf,
  anything,
  checked,
  strMatching,
  nonEmptyListOf,
  unique,
  coercedTo,
  functionTo,
  lazyAttrsOf,
  attrsWith,
  attrTag,
  either,
};
