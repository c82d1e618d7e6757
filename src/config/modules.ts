// Evaluating a set of modules into one configuration, with NixOS semantics:
// imports (each module once), declarations merged into one option tree,
// definitions merged per option in module order, and `config` as a lazy fixed
// point that module functions may read.
//
// JavaScript builds a module function's result eagerly, so a module function
// reads `config` while it is called, before its own imports, options and
// definitions are known. keel calls each module function with the real
// `config` and answers every read with the option's value from the modules
// known so far:
// - a value read while other modules are unfinished is checked afterwards
//   against what they defined; when one did, evaluation starts again and this
//   time the reading module waits until that module is finished;
// - the reading module waits (its call is undone and redone later) when the
//   value cannot be had yet: the option is itself being computed further down;
// - a read nothing known can answer (an option not declared, or not defined,
//   by the modules known so far) gets a placeholder, so that the call can
//   finish and tell its imports; the call is then made again with those
//   modules in, and a read still unanswered is the error. Nothing from a call
//   that got a placeholder is kept but its imports, which the next call must
//   return again.
// Modules that imports bring after a value was read are known from the start
// of the next attempt. A module that needs an option it defines itself is a
// cycle. A wrong read is an error or a retry, never a silently different value.
import path from "node:path";
import { ConfigError } from "../errors.js";
import { userCode, Wait } from "./blame.js";
import { lib } from "./lib.js";
import { mergeDefinitions, notDefined, Thunk } from "./merge.js";
import { evaluateSubmodulesWith } from "./submodule.js";
import { anything, bool, lazyAttrsOf, mergeOptionDeclarations, nullOr, raw, withNestedOptions } from "./types.js";
import { mkMerge, propertyOf } from "./properties.js";
import { importSpecifier, isNamespace, moduleFile, splitModule, type ModuleInput } from "./module.js";
import { isOption, mkOption, type AnyOption, type AnyType, type OptionTree, type Path } from "./option.js";
import { optionsCommand, showPath } from "./show.js";
import { collectDefinitions, didYouMean, isRecord, nestedAt, pathKey, removedOption, setAtPath, suggestions, unmatchedDefinitions, unmatchedError, walkOptions, type DefinitionSink, type Unmatched } from "./tree.js";
import type { InputSpec } from "../inputs/spec.js";

export interface EvalArgs {
  readonly modules: readonly ModuleInput[];
  /** The file named for modules that were not made with `defineModule`. */
  readonly rootFile: string;
  readonly inputs?: Readonly<Record<string, InputSpec>>;
  readonly name?: string;
  /** More arguments for every module function, as NixOS's `specialArgs` (known before any module: imports may use them). */
  readonly specialArgs?: Readonly<Record<string, unknown>>;
  /** How messages name each of `modules` (e.g. `systems.qemu`), by index. */
  readonly labels?: readonly string[];
  /** Which config files import which, to explain a module that is undefined because of an import cycle. */
  readonly imports?: ImportGraph;
  /** The kind of modules it takes ("nixos", as NixOS's evalModules' `class`): a module whose `_class` differs is an error. Modules get it as `_class`. */
  readonly class?: string;
  /** Where the evaluation's own options sit (a submodule's value: `users.users.alice`): its freeform values are a record there. */
  readonly prefix?: Path;
}

/** The config files each config file imports, by path. */
export type ImportGraph = ReadonlyMap<string, readonly string[]>;

interface Entry {
  /** The module as given: its identity across evaluation attempts. */
  readonly key: object;
  readonly file: string;
  state: "pending" | "computing" | "done";
  /** A module function, called when its definitions are needed. */
  readonly fn?: (args: unknown) => unknown;
  /** Whether its options are declared: a module object at once, a module function once a call of it got every read answered. */
  opened: boolean;
  /** Its imports once known (a module function's from an earlier call or attempt): every call must return the same ones. */
  imports?: readonly ModuleInput[];
  /** Where it stands in the import tree (its index, then each import's): definitions merge in this order, as NixOS's. */
  order: readonly number[];
  /** Whether its module function, or its `config` function, is being called. */
  calling: boolean;
  /** The reads its current call got a placeholder for, with the error each would be. */
  unanswered: { readonly path: Path; readonly error: ConfigError }[];
  /** Its definitions, for a module object: a record, properties, or a function of the module arguments. */
  config?: unknown;
  /** The imports its module function's last call returned. */
  returned?: readonly ModuleInput[] | undefined;
  /** Its `freeformType`, once opened: a definition of `_module.freeformType`. */
  freeformType?: { readonly type: unknown };
  /** Its definitions by option, once computed. */
  readonly defined: DefinitionSink;
  /** Its definitions of names no option declares, once computed: freeform values, or the error. */
  unmatched: readonly Unmatched[];
  /** The option it last had to wait for, for messages. */
  waitedFor?: Path;
}

type Frame = { readonly kind: "option"; readonly path: Path } | { readonly kind: "module"; readonly entry: Entry };

interface Read {
  readonly path: Path;
  /** The module whose computation read it, if any. */
  readonly reader: Entry | undefined;
  /** Modules whose definitions were not known when it was read. */
  readonly excluded: readonly Entry[];
  /** How many modules were known when it was read. */
  readonly known: number;
}

/** Options (by `pathKey`) that must not be read while a module is unfinished, by module. */
export type Waits = Map<object, Set<string>>;

/** The imports each module function returned, by module: known from the start of a later attempt. */
export type KnownImports = Map<object, readonly ModuleInput[]>;

/**
 * A read that a later attempt must avoid: `path` while `module` is unfinished;
 * or "imports": a read that modules imported after it define, known from the start next time.
 */
type Conflict = { readonly module: object; readonly path: string } | "imports";

export class Evaluation {
  readonly tree: Record<string, AnyOption | OptionTree> = {};
  private readonly entries: Entry[] = [];
  /** `entries` in import-tree order, when it is known. */
  private inOrder: Entry[] | undefined;
  private readonly seen = new Map<object, Entry>();
  /** How many module functions' imports this attempt learned. */
  private learned = 0;
  private readonly declaredIn = new Map<string, string>();
  private readonly values = new Map<string, { readonly value: unknown } | "evaluating">();
  private readonly stack: Frame[] = [];
  private readonly reads: Read[] = [];
  private readonly inputs: Readonly<Record<string, InputSpec>>;
  private readonly specialArgs: Readonly<Record<string, unknown>>;
  private readonly name: string;
  /** The class of modules it takes, if it says. */
  readonly class: string | undefined;
  private readonly imports: ImportGraph;
  private readonly prefix: Path;
  /** The record of freeform values: every module's unmatched definitions, merged with `_module.freeformType`. */
  private readonly freeformOption: AnyOption;
  /** Modules with definitions of undeclared names, not yet checked against the freeform type. */
  private unchecked: Entry[] = [];
  readonly config: unknown;
  /** Warnings of the evaluation itself: definitions of renamed options. */
  readonly warnings = new Set<string>();

  constructor(
    args: EvalArgs,
    private readonly waits: Waits = new Map(),
    private readonly disabled: Disabled = { modules: new Set(), files: new Set() },
    private readonly known: KnownImports = new Map(),
  ) {
    this.inputs = args.inputs ?? {};
    this.name = args.name ?? "";
    this.class = args.class;
    this.imports = args.imports ?? new Map();
    this.prefix = args.prefix ?? [];
    this.freeformOption = mkOption({ type: this.freeformValues(), default: {}, description: "The values of names no option declares." });
    this.config = this.proxy([]);
    this.specialArgs = args.specialArgs ?? {};
    this.declare(moduleOptions, "<keel's module system>", []);
    // A submodule's value is a group even when its modules declare no options.
    if (this.prefix.length > 0) this.declare(nestedAt(this.prefix, {}), "<keel's module system>", []);
    args.modules.forEach((m, i) => this.add(m, args.rootFile, args.labels?.[i] ?? `modules[${i}]`, [i]));
    // Module functions come first, so that the modules they import and the
    // options they declare are known before most values are read.
    for (const entry of this.entries.slice()) if (!entry.opened) this.compute(entry);
    // A module disabled by one found after it was taken in: evaluation starts again without it (and what only it imports).
    if (this.disabledTaken()) throw new Restart();
    for (let i = 0; i < this.entries.length; i++) this.compute(this.entries[i] as Entry);
    if (this.disabledTaken()) throw new Restart();
  }

  private disabledTaken(): boolean {
    return this.entries.some((e) => this.isDisabled(e.key, e.file));
  }

  /** The modules in import-tree order: each before its imports, those in the order written. */
  private ordered(): readonly Entry[] {
    this.inOrder ??= this.entries.slice().sort((a, b) => compareOrder(a.order, b.order));
    return this.inOrder;
  }

  /** Whether `disabledModules` of some module names this one: the module itself, or its file. */
  private isDisabled(module: object, file: string | undefined): boolean {
    return this.disabled.modules.has(module) || (file !== undefined && this.disabled.files.has(withoutExtension(file)));
  }

  /** The value of one option, merged from every module. */
  valueOf(path: Path, option: AnyOption): unknown {
    const key = pathKey(path);
    const cached = this.values.get(key);
    if (cached !== undefined && cached !== "evaluating") return cached.value;
    const reader = this.stack.findLast((f) => f.kind === "module")?.entry;
    if (cached === "evaluating") {
      // Being computed further down: a module computed for it since must wait;
      // with no module in between, the option's value depends on itself.
      const start = this.stack.findIndex((f) => f.kind === "option" && pathKey(f.path) === key);
      if (this.stack.slice(start).some((f) => f.kind === "module")) this.wait(reader, path);
      throw this.cycle(path);
    }
    if (this.entries.some((e) => e.state === "computing" && e !== reader && this.waits.get(e.key)?.has(key))) {
      this.wait(reader, path);
    }
    this.values.set(key, "evaluating");
    this.stack.push({ kind: "option", path });
    let unanswered: ConfigError;
    try {
      for (let i = 0; i < this.entries.length; i++) this.compute(this.entries[i] as Entry);
      const excluded = this.entries.filter((e) => e.state !== "done");
      const defs = this.ordered().flatMap((e) => e.defined.get(key)?.defs ?? []);
      let merged = mergeDefinitions(path, option, defs);
      // No definitions, and none to come from a module still unfinished: the type's empty value, if it has one.
      if (!merged.defined && option.type.emptyValue !== undefined && excluded.every((e) => e === reader)) merged = { defined: true, value: option.type.emptyValue(path) };
      if (merged.defined) {
        if (excluded.length > 0) this.reads.push({ path, reader, excluded, known: this.entries.length });
        this.values.set(key, { value: merged.value });
        return merged.value;
      }
      unanswered = this.undefinedValue(path, reader, excluded);
      this.values.delete(key);
    } catch (error) {
      this.values.delete(key);
      throw error;
    } finally {
      this.stack.pop();
    }
    return this.unanswered(path, unanswered);
  }

  /**
   * The value at `path`: a group of options as one plain record, an option's
   * value, or a part of it (`users.users.root.shell`).
   */
  resolve(path: Path = []): unknown {
    const value = forced(this.resolveLazily(path));
    this.checkUnmatched();
    return value;
  }

  /** `resolve` without forcing: a record's values (attrsOf) are merged when read. */
  private resolveLazily(path: Path): unknown {
    let node: AnyOption | OptionTree = this.tree;
    for (let i = 0; i < path.length; i++) {
      if (isOption(node)) return this.optionAt(path.slice(0, i), node, path.slice(i));
      const free = node[path[i] ?? ""] === undefined ? this.freeformAt(path.slice(0, i + 1)) : undefined;
      if (free !== undefined) return i + 1 === path.length ? free.value : this.within(path.slice(0, i + 1), free.value, path.slice(i + 1));
      node = this.lookup(path.slice(0, i + 1));
    }
    if (isOption(node)) return this.optionAt(path, node, []);
    const result: Record<string, unknown> = {};
    for (const [relative, option] of walkOptions(node)) {
      // The configuration holds each value once, under its own name; the module system's own options are not the system's.
      if (option.alias === undefined && !(path.length === 0 && relative[0] === "_module")) setAtPath(result, relative, this.valueOf([...path, ...relative], option));
    }
    // Freeform values sit beside the declared ones (NixOS's recursiveUpdate of the two), the declared winning.
    const free = this.freeformAt(path);
    if (free !== undefined && isRecord(free.value)) overlay(result, free.value);
    return result;
  }

  /** The value of the option at `at`, or of the part `rest` of it; an old name reads the new one, a removed one is an error. */
  private optionAt(at: Path, option: AnyOption, rest: Path): unknown {
    if (option.alias !== undefined) {
      if (option.alias.to === undefined) throw removedOption(at, option.alias.message, undefined);
      return this.resolveLazily([...option.alias.to, ...rest]);
    }
    const value = this.valueOf(at, option);
    return rest.length === 0 ? value : this.within(at, value, rest);
  }

  private within(optionPath: Path, value: unknown, rest: Path): unknown {
    let current = value;
    for (const [i, key] of rest.entries()) {
      if (!isRecord(current) || !(key in current)) {
        const there = isRecord(current) ? ` It has: ${Object.keys(current).join(", ") || "nothing"}.` : "";
        throw new ConfigError(
          `The value of \`${showPath(optionPath)}' has no \`${showPath([...optionPath, ...rest.slice(0, i + 1)])}'.${there}\n` +
            `Fix: check the name; \`keel eval <system> ${showPath(optionPath)}\` shows the value.`,
        );
      }
      current = current[key];
    }
    return current;
  }

  /**
   * The files whose definitions reach `path`: an option, or a part of one's
   * value (`fileSystems."/"`), judged by the names each definition sets.
   */
  definitionFiles(path: Path): string[] {
    let split = 0;
    let node: AnyOption | OptionTree = this.tree;
    while (!isOption(node)) {
      const child: AnyOption | OptionTree | undefined = node[path[split] ?? ""];
      if (child === undefined) return [];
      node = child;
      split++;
    }
    const rest = path.slice(split);
    const defs = this.ordered().flatMap((e) => e.defined.get(pathKey(path.slice(0, split)))?.defs ?? []);
    return [...new Set(defs.filter((d) => reaches(d.value, rest)).map((d) => d.file))];
  }

  /** The declaration at `path`: an option or a group of options. */
  lookup(path: Path): AnyOption | OptionTree {
    let node: AnyOption | OptionTree = this.tree;
    for (const [i, key] of path.entries()) {
      const child: AnyOption | OptionTree | undefined = isOption(node) ? undefined : node[key];
      if (child === undefined) {
        const offers = isOption(node) ? [] : suggestions(key, Object.keys(node)).map((s) => showPath([...path.slice(0, i), s]));
        throw new ConfigError(
          `The option \`${showPath(path.slice(0, i + 1))}' does not exist.` +
            (offers.length === 0 ? "" : ` ${didYouMean(offers)}`) +
            `\nFix: check the spelling; ${optionsCommand(path.slice(0, i))} lists the options there.`,
        );
      }
      node = child;
    }
    return node;
  }

  /**
   * Checks every value read while some module was unfinished against what that
   * module defined. Returns the first conflict a new attempt can avoid by waiting.
   */
  conflict(): Conflict | undefined {
    for (const read of this.reads) {
      const key = pathKey(read.path);
      const culprit = read.excluded.find((e) => e.defined.has(key));
      const late = this.entries.slice(read.known).find((e) => e.defined.has(key));
      if (culprit === undefined && late === undefined) continue;
      if (culprit !== undefined && culprit !== read.reader && !this.waits.get(culprit.key)?.has(key)) {
        return { module: culprit.key, path: key };
      }
      // Brought by imports learned in this attempt: the next one knows them from the start.
      if (culprit === undefined && this.learned > 0) return "imports";
      throw selfRecursion((culprit ?? late)?.file ?? "", read.path);
    }
    return undefined;
  }

  private add(input: ModuleInput, parentFile: string, where: string, order: readonly number[]): void {
    const cycle = input === undefined ? importCycle(this.imports, parentFile) : undefined;
    if (cycle !== undefined) throw cycleError(cycle, where);
    if ((typeof input !== "object" || input === null || Array.isArray(input)) && typeof input !== "function") {
      throw new ConfigError(
        `\`${parentFile}' imports ${String(input)} as ${where}, which is not a module.\n` +
          "Fix: check the import statement, and that the imported file has `export default defineModule(…)`.",
      );
    }
    if (isNamespace(input)) throw namespaceModule(input, parentFile, where);
    const seen = this.seen.get(input);
    if (seen !== undefined) {
      // Imported again from earlier in the tree: it takes that place, as NixOS orders the modules.
      if (compareOrder(order, seen.order) < 0) this.reorder(seen, order);
      return;
    }
    if (this.isDisabled(input, moduleFile(input))) return;
    const fn = typeof input === "function" ? (input as (args: unknown) => unknown) : undefined;
    const file = moduleFile(input) ?? parentFile;
    const entry: Entry = { key: input, file, state: "pending", opened: false, order, calling: false, unanswered: [], defined: new Map(), unmatched: [], ...(fn ? { fn } : {}) };
    this.seen.set(input, entry);
    this.entries.push(entry);
    this.inOrder = undefined;
    if (fn === undefined) this.open(entry, input);
    else if (this.known.has(input)) this.takeImports(entry, this.known.get(input) ?? []);
  }

  private reorder(entry: Entry, order: readonly number[]): void {
    entry.order = order;
    this.inOrder = undefined;
    entry.imports?.forEach((m, j) => {
      const imported = this.seen.get(m);
      if (imported !== undefined && compareOrder([...order, j], imported.order) < 0) this.reorder(imported, [...order, j]);
    });
  }

  /** Takes in the modules a module imports; a module function's are the same in every call, or they were computed from `config`. */
  private takeImports(entry: Entry, imports: readonly ModuleInput[]): void {
    if (entry.imports !== undefined) {
      if (!sameModules(entry.imports, imports)) throw importsReadConfig(entry.file);
      return;
    }
    entry.imports = imports;
    if (entry.fn !== undefined && !this.known.has(entry.key)) {
      this.known.set(entry.key, imports);
      this.learned++;
    }
    imports.forEach((m, i) => this.add(m, entry.file, `imports[${i}]`, [...entry.order, i]));
  }

  /** Takes in a module's options and imports, and a module object's definitions. */
  private open(entry: Entry, module: unknown): void {
    const { imports, options, config, disabledModules, ...split } = splitModule(entry.file, module);
    if ("freeformType" in split) entry.freeformType = { type: split.freeformType };
    if (split._class !== undefined && this.class !== undefined && split._class !== this.class) {
      throw new ConfigError(
        `The module \`${entry.file}' is of class ${JSON.stringify(split._class)}, but this evaluation expects class ${JSON.stringify(this.class)}.\n` +
          `Fix: import a module written for ${JSON.stringify(this.class)}, or leave \`${entry.file}' out of this evaluation.`,
      );
    }
    for (const [i, item] of disabledModules.entries()) {
      if (typeof item === "string") {
        // A file, absolute, relative to this module's, or as a module names it.
        this.disabled.files.add(withoutExtension(path.resolve(path.dirname(entry.file), item)));
        this.disabled.files.add(withoutExtension(item));
      } else if ((typeof item === "object" && item !== null) || typeof item === "function") {
        this.disabled.modules.add(item);
      } else {
        throw new ConfigError(
          `\`disabledModules[${i}]' in \`${entry.file}' is ${String(item)}, which names no module.\n` +
            "Fix: list the module itself (as imported) or its file, e.g. `disabledModules: [legacy]` or `disabledModules: [\"./legacy.ts\"]`.",
        );
      }
    }
    if (options !== undefined) this.declare(options, entry.file, []);
    if (entry.fn === undefined) entry.config = config;
    entry.opened = true;
    this.takeImports(entry, imports);
  }

  private compute(entry: Entry): void {
    if (entry.state !== "pending") return;
    entry.state = "computing";
    this.stack.push({ kind: "module", entry });
    try {
      const own: DefinitionSink = new Map();
      const unmatched: Unmatched[] = [];
      const definitions = this.definitionsOf(entry);
      const all = entry.freeformType === undefined ? definitions : mkMerge([definitions, { _module: { freeformType: entry.freeformType.type } }]);
      collectDefinitions({ tree: this.tree, warn: (w) => this.warnings.add(w), freeform: unmatched }, all, entry.file, [], own);
      for (const [key, collected] of own) entry.defined.set(key, collected);
      if (unmatched.length > 0) entry.defined.set(pathKey(freeformPath), { path: freeformPath, defs: unmatchedDefinitions(unmatched, this.prefix.length) });
      entry.unmatched = unmatched;
      entry.state = "done";
    } catch (error) {
      entry.state = "pending";
      if (!(error instanceof Wait)) throw error;
      return;
    } finally {
      this.stack.pop();
    }
    if (entry.unmatched.length > 0) this.unchecked.push(entry);
    this.checkUnmatched();
  }

  /**
   * Names no option declares are errors unless a module gives a freeform
   * type. Modules computed while that type is being merged are checked once it is.
   */
  private checkUnmatched(): void {
    if (this.unchecked.length === 0 || this.stack.some((f) => f.kind === "option" && pathKey(f.path) === pathKey(freeformTypePath))) return;
    const [first] = this.unchecked;
    this.unchecked = [];
    const item = first?.unmatched[0];
    if (item !== undefined && this.resolveLazily(freeformTypePath) === null && this.resolveLazily(["_module", "check"]) === true) throw unmatchedError(this.tree, item);
  }

  /** The type of the record of freeform values: `_module.freeformType`'s merge of every module's unmatched definitions, at the prefix. */
  private freeformValues(): AnyType {
    return {
      description: "freeform values",
      check: isRecord,
      merge: (_path, defs) => {
        const type = this.resolveLazily(freeformTypePath) as AnyType | null;
        this.checkUnmatched();
        if (type === null) return {};
        if (!type.check({})) throw noRecordType(this.prefix, type);
        const merged = mergeDefinitions(this.prefix, { type }, defs);
        return merged.defined ? merged.value : {};
      },
    };
  }

  /** The freeform value at `path`, if there is one. */
  private freeformAt(path: Path): { readonly value: unknown } | undefined {
    if (!this.entries.some((e) => e.unmatched.length > 0 || e.state !== "done")) return undefined;
    if (path.length < this.prefix.length || this.prefix.some((key, i) => path[i] !== key)) return undefined;
    let value = this.valueOf(freeformPath, this.freeformOption);
    for (const key of path.slice(this.prefix.length)) {
      if (!isRecord(value) || !(key in value)) return undefined;
      value = value[key];
    }
    return { value };
  }

  /**
   * A module's definitions. A call that got a placeholder for a read is made
   * again once the imports it returned are in; a read still unanswered then is
   * the error (a module reading what it defines itself, when it does).
   */
  private definitionsOf(entry: Entry): unknown {
    for (;;) {
      entry.unanswered = [];
      let definitions: unknown;
      let failure: unknown;
      try {
        definitions = this.call(entry);
      } catch (error) {
        if (entry.unanswered.length === 0 || error instanceof Wait) throw error;
        failure = error;
      }
      const [first] = entry.unanswered;
      if (first === undefined) return definitions;
      const before = this.entries.length;
      if (entry.returned !== undefined && !entry.opened) this.takeImports(entry, entry.returned);
      if (this.entries.length > before) continue;
      throw failure === undefined && this.defines(entry, definitions, first.path) ? selfRecursion(entry.file, first.path) : first.error;
    }
  }

  /** One call of a module's function and of its `config` function; the module is opened by a call that got every read answered. */
  private call(entry: Entry): unknown {
    entry.returned = undefined;
    let part = entry.config;
    entry.calling = true;
    try {
      if (entry.fn) {
        const module = callModule(entry.fn, this.args(), entry.file);
        const { imports, config: definitions } = splitModule(entry.file, module);
        entry.returned = imports;
        if (entry.unanswered.length > 0) return definitions;
        if (entry.opened) this.takeImports(entry, imports);
        else this.open(entry, module);
        part = definitions;
      }
      if (typeof part === "function") part = callModule(part as (args: unknown) => unknown, this.args(), entry.file);
      return part ?? {};
    } finally {
      entry.calling = false;
    }
  }

  /** Whether definitions computed with placeholders define `path`: to say a module reads what it defines itself. */
  private defines(entry: Entry, definitions: unknown, path: Path): boolean {
    const sink: DefinitionSink = new Map();
    try {
      collectDefinitions({ tree: this.tree }, definitions, entry.file, [], sink);
    } catch {
      return false;
    }
    return sink.has(pathKey(path));
  }

  /**
   * A read nothing known answers: in a module's own call, a placeholder (the
   * call is made again, or fails, once it returns); anywhere else, the error.
   */
  private unanswered(path: Path, error: ConfigError): unknown {
    const top = this.stack[this.stack.length - 1];
    if (top?.kind !== "module" || !top.entry.calling) throw error;
    top.entry.unanswered.push({ path, error });
    return placeholder();
  }

  /**
   * A module function's arguments: config, lib, inputs, name, the
   * specialArgs, and what modules give in `_module.args` (read when the
   * function asks for it). An argument nobody gives is an error naming it,
   * not undefined.
   */
  private args(): unknown {
    // specialArgs may replace lib, inputs and name (as NixOS lets them replace lib), never config.
    const known: Record<string, unknown> = {
      lib,
      inputs: this.inputs,
      name: this.name,
      _prefix: this.prefix,
      _class: this.class ?? null,
      ...this.specialArgs,
      specialArgs: this.specialArgs,
      config: this.config,
    };
    const reader = this.stack.findLast((f) => f.kind === "module")?.entry;
    return new Proxy(known, {
      get: (target, key) => {
        if (typeof key === "symbol" || key in target || key === "then") return target[key as string];
        const given = this.resolveLazily(["_module", "args"]) as Record<string, unknown>;
        if (key in given) return given[key];
        return this.unanswered(
          ["_module", "args", key],
          new ConfigError(
            `The module function in \`${reader?.file ?? "a module"}' asks for the argument \`${key}', which no module gives.\n` +
              `Fix: give it with \`_module: { args: { ${key}: … } }\` in a module, or as a special argument of the evaluation; the arguments every module gets are config, lib, inputs, name, specialArgs, _prefix and _class.`,
          ),
        );
      },
    });
  }

  /** Undoes the reading module's computation, to be redone when the value can be had. */
  private wait(reader: Entry | undefined, path: Path): never {
    if (reader === undefined || !this.entries.some((e) => e.state === "computing" && e !== reader)) {
      throw this.cycle(path);
    }
    reader.waitedFor = path;
    throw new Wait();
  }

  /** An option with no definition among the finished modules: not defined, or not known yet. */
  private undefinedValue(path: Path, reader: Entry | undefined, excluded: readonly Entry[]): ConfigError {
    const unfinished = excluded.filter((e) => e !== reader);
    if (unfinished.length > 0) {
      if (reader !== undefined && this.entries.some((e) => e.state === "computing" && e !== reader)) this.wait(reader, path);
      const waiting = unfinished
        .map((e) => `\`${e.file}'${e.waitedFor ? ` reads \`${showPath(e.waitedFor)}'` : ""}`)
        .join("; ");
      return new ConfigError(
        `Infinite recursion: \`${reader?.file}' reads the option \`${showPath(path)}' while its own definitions are computed, ` +
          `but the modules that may define \`${showPath(path)}' need them first: ${waiting}.\n` +
          `Fix: read one of these options in a getter (\`get x() { return config.${showPath(path)}; }\`), which is evaluated only when needed.`,
      );
    }
    return notDefined(path);
  }

  private declare(options: unknown, file: string, path: Path): void {
    if (isRecord(options) && typeof options.check === "function" && typeof options.merge === "function" && typeof options.description === "string") {
      throw new ConfigError(
        `\`options.${showPath(path)}' in \`${file}' is a type (${options.description}), where an option declaration is expected.\n` +
          `Fix: declare the option with it: \`${path[path.length - 1] ?? "name"}: mkOption({ type: …, description: "…" })\`.`,
      );
    }
    if (!isRecord(options)) {
      throw new ConfigError(
        `\`options${path.length ? "." + showPath(path) : ""}' in \`${file}' is neither an option nor a record of options.\n` +
          "Fix: declare each option with mkOption({ type, description, … }), grouped in records.",
      );
    }
    let node: Record<string, unknown> = this.tree;
    for (const key of path) node = node[key] as Record<string, unknown>;
    for (const [key, declared] of Object.entries(options)) {
      const childPath = [...path, key];
      const existing = node[key];
      if (isOption(declared)) {
        if (declared.declaredIn === "<unknown>") declared.declaredIn = file;
        // The group declared first (by `this.declaredIn`'s module) becomes the submodule's options.
        const absorbing = existing !== undefined && !isOption(existing) ? withNestedOptions(declared, existing as OptionTree, this.declaredIn.get(pathKey(childPath)) ?? file) : undefined;
        if (absorbing !== undefined) {
          this.declaredIn.set(pathKey(childPath), file);
          node[key] = absorbing;
          continue;
        }
        if (existing !== undefined) {
          // Declared again: merged as NixOS merges declarations (a submodule's options from two modules), or refused.
          const merged = isOption(existing) ? mergeOptionDeclarations(existing, declared) : "it is a group of options there";
          if (typeof merged === "string") {
            throw new ConfigError(
              `The option \`${showPath(childPath)}' in \`${file}' is already declared in \`${this.declaredIn.get(pathKey(childPath)) ?? "another module"}': ${merged}.\n` +
                "Fix: declare it once, or let the second declaration only extend it: the same type (or a submodule with more options), without its own default, example or description.",
            );
          }
          node[key] = merged;
          continue;
        }
        this.declaredIn.set(pathKey(childPath), file);
        node[key] = declared;
      } else {
        // Options declared under an option of submodule type join the submodule (NixOS's nested declarations).
        const extended = isOption(existing) && isRecord(declared) ? withNestedOptions(existing, declared as OptionTree, file) : undefined;
        if (extended !== undefined) {
          node[key] = extended;
          continue;
        }
        if (isOption(existing)) {
          throw new ConfigError(
            `\`${file}' declares options under \`${showPath(childPath)}', which \`${this.declaredIn.get(pathKey(childPath)) ?? "another module"}' declares as an option.\n` +
              "Fix: choose another name for the group.",
          );
        }
        if (existing === undefined) {
          node[key] = {};
          this.declaredIn.set(pathKey(childPath), file);
        }
        this.declare(declared, file, childPath);
      }
    }
  }

  private proxy(path: Path): unknown {
    const node = (): OptionTree => this.lookup(path) as OptionTree;
    const names = (): string[] => {
      const free = this.freeformAt(path);
      return [...new Set([...Object.keys(node()), ...(free !== undefined && isRecord(free.value) ? Object.keys(free.value) : [])])];
    };
    return new Proxy(
      {},
      {
        get: (_target, key) => {
          if (typeof key === "symbol") return undefined;
          const childPath = [...path, key];
          const child = node()[key] ?? this.declaredLater(childPath, node);
          if (child === undefined) {
            const free = this.freeformAt(childPath);
            if (free !== undefined) return free.value;
            return this.unanswered(childPath, this.unknownRead(childPath, Object.keys(node())));
          }
          return isOption(child) ? this.optionAt(childPath, child, []) : this.proxy(childPath);
        },
        has: (_target, key) => typeof key === "string" && (key in node() || this.freeformAt([...path, key]) !== undefined),
        ownKeys: () => names(),
        getOwnPropertyDescriptor: (_target, key) => (typeof key === "string" && names().includes(key) ? { enumerable: true, configurable: true } : undefined),
      },
    );
  }

  /**
   * A name not declared yet: the module functions not called yet may declare
   * it; one being called may too (the reader waits for it).
   */
  private declaredLater(path: Path, node: () => OptionTree): AnyOption | OptionTree | undefined {
    for (const entry of this.entries.slice()) if (!entry.opened) this.compute(entry);
    const child = node()[path[path.length - 1] ?? ""];
    const reader = this.stack.findLast((f) => f.kind === "module")?.entry;
    if (child === undefined && reader !== undefined && this.entries.some((e) => e !== reader && e.state === "computing" && !e.opened)) this.wait(reader, path);
    return child;
  }

  private unknownRead(path: Path, siblings: readonly string[]): ConfigError {
    const reader = this.stack.findLast((f) => f.kind === "module")?.entry;
    const offers = suggestions(path[path.length - 1] ?? "", siblings).map((s) => `config.${showPath([...path.slice(0, -1), s])}`);
    return new ConfigError(
      `${reader ? `\`${reader.file}'` : "A module"} reads \`config.${showPath(path)}', which is not an option.\n` +
        (offers.length === 0 ? "" : `${didYouMean(offers)}\n`) +
        `Fix: check the spelling; ${optionsCommand(path.slice(0, -1))} lists what exists.`,
    );
  }

  private cycle(path: Path): ConfigError {
    const start = this.stack.findIndex((f) => f.kind === "option" && pathKey(f.path) === pathKey(path));
    const frames = this.stack.slice(start);
    const options = frames.flatMap((f) => (f.kind === "option" ? [`\`${showPath(f.path)}'`] : []));
    const files = [...new Set(frames.flatMap((f) => (f.kind === "module" ? [`\`${f.entry.file}'`] : [])))];
    return new ConfigError(
      `Infinite recursion: the option \`${showPath(path)}' depends on itself: ${[...options, `\`${showPath(path)}'`].join(" → ")}.\n` +
        (files.length > 0
          ? `Read by the module functions in ${files.join(", ")}.\n` +
            "Fix: break the cycle, or read the option in a getter (`get x() { return config.a.b; }`), which is evaluated only when needed."
          : "Fix: break the cycle: one of these options must be defined without reading the others."),
    );
  }
}

/**
 * `value` with every record value and list element read: what is asked for
 * is checked whole (a type error in one entry of a record is found when the
 * record is printed or built), what is not asked for stays unmerged.
 */
function forced<T>(value: T, seen = new WeakSet<object>()): T {
  if (typeof value !== "object" || value === null || seen.has(value)) return value;
  seen.add(value);
  for (const key of Object.keys(value)) forced((value as Record<string, unknown>)[key], seen);
  return value;
}

/** Where the record of freeform values is kept among a module's definitions (no option is declared there). */
const freeformPath: Path = ["_module", "freeform"];
const freeformTypePath: Path = ["_module", "freeformType"];

/** A freeform type must take a record: the values of the names no option declares are one (NixOS warns, and takes them unchecked). */
function noRecordType(prefix: Path, type: AnyType): ConfigError {
  const where = prefix.length === 0 ? "" : ` of \`${showPath(prefix)}'`;
  return new ConfigError(
    `The freeform type${where} is \`${type.description}', which takes no record; the values of names no option declares are a record.\n` +
      "Fix: wrap it in a record type: `freeformType: types.attrsOf(…)`.",
  );
}

/** `free`'s names that `declared` lacks, copied into it (getters unread), records merged at every depth. */
function overlay(declared: Record<string, unknown>, free: Record<string, unknown>): void {
  for (const key of Object.keys(free)) {
    const mine = declared[key];
    if (!(key in declared)) Object.defineProperty(declared, key, { ...Object.getOwnPropertyDescriptor(free, key), enumerable: true, configurable: true });
    else if (isRecord(mine) && isRecord(free[key])) overlay(mine, free[key]);
  }
}

/** The module system's own options, in every evaluation. */
const moduleOptions = {
  _module: {
    freeformType: mkOption({
      type: nullOr(raw),
      default: null,
      description: "The type of the values of names no option declares (`types.attrsOf(types.str)`); null: such names are errors.",
    }),
    check: mkOption({
      type: bool,
      default: true,
      description: "Whether a definition of a name no option declares is an error; false ignores such definitions (NixOS's `_module.check`).",
    }),
    args: mkOption({
      type: lazyAttrsOf(anything),
      default: {},
      description: "More arguments for every module function (`({ config, pkgs }) => …` reads `pkgs' from here), merged from every module.",
    }),
  },
};

/** Whether a definition's value (through its properties) sets the names `rest`. */
function reaches(value: unknown, rest: Path): boolean {
  let current = unwrap(value);
  for (const key of rest) {
    if (!isRecord(current) || !(key in current)) return false;
    current = unwrap(current[key]);
  }
  return true;
}

function unwrap(value: unknown): unknown {
  let current = value instanceof Thunk ? undefined : value;
  for (let property = propertyOf(current); property !== undefined && property._type !== "merge"; property = propertyOf(current)) current = property.content;
  return current;
}

function sameModules(a: readonly ModuleInput[], b: readonly ModuleInput[]): boolean {
  return a.length === b.length && a.every((m, i) => m === b[i]);
}

/** A module function whose imports came out differently once `config` was known: they were computed from it. */
function importsReadConfig(file: string): ConfigError {
  return new ConfigError(
    `The module function in \`${file}' computes its \`imports' from \`config': they differ once the configuration is known. ` +
      "Imports are needed before there is a configuration to read (NixOS stops with infinite recursion here).\n" +
      "Fix: import the module always and make its definitions conditional in it, e.g. `config: mkIf(config.virtualisation.graphics, { … })`, " +
      "or give it an `enable` option and set that instead.",
  );
}

/** The shortest chain of imports from a file `file` imports back to `file`: [file, …, file]. */
function importCycle(graph: ImportGraph, file: string): string[] | undefined {
  const previous = new Map<string, string>();
  const queue = [...(graph.get(file) ?? [])];
  for (const next of queue) previous.set(next, file);
  for (let i = 0; i < queue.length; i++) {
    const current = queue[i] as string;
    for (const next of graph.get(current) ?? []) {
      if (next === file) {
        const chain = [current];
        for (let at = current; at !== file; at = previous.get(at) as string) chain.unshift(previous.get(at) as string);
        return [...chain, file];
      }
      if (!previous.has(next)) {
        previous.set(next, current);
        queue.push(next);
      }
    }
  }
  return undefined;
}

/** A module undefined where it is imported because its file was still running: JavaScript's import cycle. */
function cycleError(cycle: readonly string[], where: string): ConfigError {
  const [file, back] = [cycle[0] as string, cycle[1] as string];
  const names = cycle.map((f) => path.basename(f)).join(" → ");
  return new ConfigError(
    `\`${file}' imports a module that is undefined as ${where}: its files import each other (${names}), so when \`${file}' runs, ` +
      `\`${back}' has not finished and its default export does not exist yet.\n` +
      `Fix: keel includes each module once however often it is imported, so one direction is enough: remove the import of \`${path.basename(back)}' from \`${file}' ` +
      "(it is already imported the other way), or move what both need into a third module that both import.",
  );
}

function namespaceModule(namespace: Record<string, unknown>, parentFile: string, where: string): ConfigError {
  const names = Object.keys(namespace);
  const file = names.flatMap((n) => {
    const v = namespace[n];
    return (typeof v === "object" || typeof v === "function") && v !== null ? (moduleFile(v) ?? []) : [];
  })[0];
  const from = file === undefined ? "a file" : `\`${file}'`;
  const specifier = file === undefined ? "./m" : importSpecifier(parentFile, file);
  if (names.includes("default")) {
    return new ConfigError(
      `\`${parentFile}' gives ${where} the whole of ${from} (\`import * as …'), not its default export.\n` +
        `Fix: import the module itself: \`import m from "${specifier}"'.`,
    );
  }
  return new ConfigError(
    `\`${parentFile}' gives ${where} the whole of ${from} (\`import * as …'), which has no default export; it exports: ${names.join(", ") || "nothing"}.\n` +
      `Fix: end ${from} with \`export default defineModule({ … })' and import that (\`import m from "${specifier}"'), or import the module it exports by name (\`import { ${names[0] ?? "m"} } from "${specifier}"').`,
  );
}

function selfRecursion(file: string, path: Path): ConfigError {
  return new ConfigError(
    `Infinite recursion: \`${file}' defines the option \`${showPath(path)}', and its value was needed to compute that module's own definitions.\n` +
      `Fix: read it in a getter (\`get x() { return config.${showPath(path)}; }\`), which is evaluated only when needed, or move the definition of \`${showPath(path)}' to another module.`,
  );
}

/**
 * The answer to a read nothing known answers yet: it answers anything with
 * itself, so that the module function can finish and return its imports.
 * Nothing computed from it is kept.
 */
function placeholder(): unknown {
  const self: unknown = new Proxy(() => undefined, {
    get(_target, key) {
      if (key === Symbol.toPrimitive) return () => "";
      if (key === Symbol.iterator) return function* () {};
      return key === "then" ? undefined : self;
    },
    apply: () => self,
    has: () => false,
    ownKeys: () => [],
  });
  return self;
}

function callModule(fn: (args: unknown) => unknown, args: unknown, file: string): unknown {
  return userCode(() => fn(args), () => `The module function in \`${file}'`, "correct the module at that line; --debug shows the whole stack.");
}

/** What `disabledModules` names so far: modules, and files (without their extension). */
interface Disabled {
  readonly modules: Set<object>;
  readonly files: Set<string>;
}

/** Orders places in the import tree: a module before its imports, imports in the order written. */
function compareOrder(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return (a[i] as number) - (b[i] as number);
  return a.length - b.length;
}

/** Thrown when a module is disabled after it was taken in; evaluateModules starts again. */
class Restart extends Error {}

const withoutExtension = (file: string): string => file.replace(/\.(ts|mts|cts|js|mjs|cjs)$/, "");

export function evaluateModules(args: EvalArgs): Evaluation {
  const waits: Waits = new Map();
  const disabled: Disabled = { modules: new Set(), files: new Set() };
  const known: KnownImports = new Map();
  for (;;) {
    let evaluation: Evaluation;
    try {
      evaluation = new Evaluation(args, waits, disabled, known);
    } catch (error) {
      if (error instanceof Restart) continue;
      throw error;
    }
    const conflict = evaluation.conflict();
    if (conflict === undefined) return evaluation;
    if (conflict === "imports") continue;
    const paths = waits.get(conflict.module) ?? new Set<string>();
    paths.add(conflict.path);
    waits.set(conflict.module, paths);
  }
}

evaluateSubmodulesWith(evaluateModules);
