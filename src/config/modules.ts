// Evaluating a set of modules into one configuration, with NixOS semantics:
// imports (each module once), declarations merged into one option tree,
// definitions merged per option, and `config` as a lazy fixed point that
// module functions may read.
//
// JavaScript builds a module function's result eagerly, so reading `config`
// inside it needs the option's definitions before that module's own are known.
// keel first calls each module function with a stand-in `config` to learn its
// imports and options, then calls the functions that read `config` again when
// definitions are needed. A value read while other modules are unfinished is
// computed from the finished ones, and keel checks afterwards that none of the
// unfinished ones defined it. When one did, evaluation starts again, and this
// time the reading module waits until that module is finished. A module that
// reads an option it defines itself is a cycle. A wrong read is an error or a
// retry, never a silently different value.
import { ConfigError } from "../errors.js";
import { lib } from "./lib.js";
import { moduleFile, type ModuleInput } from "./module.js";
import { mergeDefinitions, notDefined } from "./merge.js";
import { isOption, type AnyOption, type OptionTree, type Path } from "./option.js";
import { showPath } from "./show.js";
import { collectDefinitions, isRecord, pathKey, setAtPath, walkOptions, type DefinitionSink } from "./tree.js";
import type { InputSpec } from "../inputs/spec.js";

export interface EvalArgs {
  readonly modules: readonly ModuleInput[];
  /** The file named for modules that were not made with `defineModule`. */
  readonly rootFile: string;
  readonly inputs?: Readonly<Record<string, InputSpec>>;
  readonly name?: string;
}

interface Entry {
  /** The module as given: its identity across evaluation attempts. */
  readonly key: object;
  readonly file: string;
  state: "pending" | "computing" | "done";
  /** A module function whose body reads `config`: called again, for real, when definitions are needed. */
  fn?: (args: unknown) => unknown;
  /** Whether its imports and options are known; not when calling it with a stand-in `config` failed. */
  opened: boolean;
  /** Its definitions: a record, properties, or a function of the module arguments. */
  config?: unknown;
  /** The options it defines, by `pathKey`, once computed. */
  readonly defined: Set<string>;
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

/** Options (by `pathKey`) that a module must not be unfinished for when read, by module. */
export type Waits = Map<object, Set<string>>;

/** A read that a later attempt must avoid: `path` while `module` is unfinished. */
interface Conflict {
  readonly module: object;
  readonly path: string;
}

/** Unwinds a module's computation that must wait for an unfinished module. */
class Wait {}

export class Evaluation {
  readonly tree: Record<string, AnyOption | OptionTree> = {};
  private readonly entries: Entry[] = [];
  private readonly seen = new Set<object>();
  private readonly declaredIn = new Map<string, string>();
  private readonly sink: DefinitionSink = new Map();
  private readonly values = new Map<string, { readonly value: unknown } | "evaluating">();
  private readonly stack: Frame[] = [];
  private readonly reads: Read[] = [];
  private readonly inputs: Readonly<Record<string, InputSpec>>;
  private readonly name: string;
  readonly config: unknown;

  constructor(
    args: EvalArgs,
    private readonly waits: Waits = new Map(),
  ) {
    this.inputs = args.inputs ?? {};
    this.name = args.name ?? "";
    this.config = this.proxy([]);
    args.modules.forEach((m, i) => this.add(m, args.rootFile, `modules[${i}]`));
    // Modules whose imports are still unknown come first, so that the modules
    // they bring are known before most values are read.
    for (const entry of this.entries.slice()) if (!entry.opened) this.compute(entry);
    for (let i = 0; i < this.entries.length; i++) this.compute(this.entries[i] as Entry);
  }

  /** The value of one option, merged from every module. */
  valueOf(path: Path, option: AnyOption): unknown {
    const key = pathKey(path);
    const cached = this.values.get(key);
    if (cached === "evaluating") throw this.cycle(path);
    if (cached !== undefined) return cached.value;
    const reader = this.stack.findLast((f) => f.kind === "module")?.entry;
    if (this.entries.some((e) => e.state === "computing" && e !== reader && this.waits.get(e.key)?.has(key))) {
      throw new Wait();
    }
    this.values.set(key, "evaluating");
    this.stack.push({ kind: "option", path });
    try {
      for (let i = 0; i < this.entries.length; i++) this.compute(this.entries[i] as Entry);
      const excluded = this.entries.filter((e) => e.state !== "done");
      if (excluded.length > 0) this.reads.push({ path, reader, excluded, known: this.entries.length });
      const merged = mergeDefinitions(path, option, this.sink.get(key)?.defs ?? []);
      if (!merged.defined) throw notDefined(path);
      this.values.set(key, { value: merged.value });
      return merged.value;
    } catch (error) {
      this.values.delete(key);
      throw error;
    } finally {
      this.stack.pop();
    }
  }

  /** Every option's value, as one plain record. */
  resolve(prefix: Path = []): unknown {
    const node = this.lookup(prefix);
    if (isOption(node)) return this.valueOf(prefix, node);
    const result: Record<string, unknown> = {};
    for (const [relative, option] of walkOptions(node)) {
      setAtPath(result, relative, this.valueOf([...prefix, ...relative], option));
    }
    return result;
  }

  /** The declaration at `path`: an option or a group of options. */
  lookup(path: Path): AnyOption | OptionTree {
    let node: AnyOption | OptionTree = this.tree;
    for (const [i, key] of path.entries()) {
      const child: AnyOption | OptionTree | undefined = isOption(node) ? undefined : node[key];
      if (child === undefined) {
        throw new ConfigError(
          `The option \`${showPath(path.slice(0, i + 1))}' does not exist.\n` +
            "Fix: check the spelling; `keel options` lists every option.",
        );
      }
      node = child;
    }
    return node;
  }

  private add(input: ModuleInput, parentFile: string, where: string): void {
    if ((typeof input !== "object" || input === null || Array.isArray(input)) && typeof input !== "function") {
      throw new ConfigError(
        `\`${parentFile}' imports ${String(input)} as ${where}, which is not a module.\n` +
          "Fix: check the import statement, and that the imported file has `export default defineModule(…)`.",
      );
    }
    if (this.seen.has(input)) return;
    this.seen.add(input);
    const entry: Entry = { key: input, file: moduleFile(input) ?? parentFile, state: "pending", opened: false, defined: new Set() };
    this.entries.push(entry);
    if (typeof input !== "function") {
      this.open(entry, input);
      return;
    }
    const fn = input as (args: unknown) => unknown;
    const probe = { read: false };
    let result: unknown;
    try {
      result = fn(this.args(this.standIn(probe)));
    } catch {
      entry.fn = fn;
      return;
    }
    if (probe.read) entry.fn = fn;
    this.open(entry, result);
  }

  /** Takes in a module's options and imports; keeps its definitions unless its function must run again. */
  private open(entry: Entry, module: unknown): void {
    const { imports, options, config } = parts(entry.file, module);
    if (options !== undefined) this.declare(options, entry.file, []);
    if (entry.fn === undefined) entry.config = config;
    entry.opened = true;
    imports.forEach((m, i) => this.add(m, entry.file, `imports[${i}]`));
  }

  private compute(entry: Entry): void {
    if (entry.state !== "pending") return;
    entry.state = "computing";
    this.stack.push({ kind: "module", entry });
    try {
      let part = entry.config;
      if (entry.fn) {
        const module = callModule(entry.fn, this.args(this.config), entry.file);
        if (!entry.opened) this.open(entry, module);
        part = parts(entry.file, module).config;
      }
      if (typeof part === "function") part = callModule(part as (args: unknown) => unknown, this.args(this.config), entry.file);
      if (part !== undefined) {
        const own: DefinitionSink = new Map();
        collectDefinitions({ tree: this.tree }, part, entry.file, [], own);
        for (const [key, collected] of own) {
          entry.defined.add(key);
          const existing = this.sink.get(key);
          if (existing) existing.defs.push(...collected.defs);
          else this.sink.set(key, collected);
        }
      }
      entry.state = "done";
    } catch (error) {
      entry.state = "pending";
      if (!(error instanceof Wait)) throw error;
    } finally {
      this.stack.pop();
    }
  }

  private args(config: unknown): unknown {
    return { config, lib, inputs: this.inputs, name: this.name };
  }

  /**
   * A `config` that notes it was read and answers anything with a stand-in, so
   * that a module function can run far enough to return its imports and options.
   */
  private standIn(probe: { read: boolean }): unknown {
    const standIn: unknown = new Proxy(() => undefined, {
      get(_target, key) {
        probe.read = true;
        if (key === Symbol.toPrimitive) return () => "";
        if (key === Symbol.iterator) return function* () {};
        return key === "then" ? undefined : standIn;
      },
      apply: () => standIn,
      has: () => false,
      ownKeys: () => [],
    });
    return standIn;
  }

  private declare(options: unknown, file: string, path: Path): void {
    if (!isRecord(options)) {
      throw new ConfigError(
        `\`options${path.length ? "." + showPath(path) : ""}' in \`${file}' must be a record of options made with mkOption.`,
      );
    }
    let node: Record<string, unknown> = this.tree;
    for (const key of path) node = node[key] as Record<string, unknown>;
    for (const [key, declared] of Object.entries(options)) {
      const childPath = [...path, key];
      const existing = node[key];
      if (isOption(declared)) {
        if (existing !== undefined) {
          throw new ConfigError(
            `The option \`${showPath(childPath)}' in \`${file}' is already declared in \`${this.declaredIn.get(pathKey(childPath)) ?? "another module"}'.\n` +
              "Fix: declare each option in one module only.",
          );
        }
        if (declared.declaredIn === "<unknown>") declared.declaredIn = file;
        this.declaredIn.set(pathKey(childPath), file);
        node[key] = declared;
      } else {
        if (isOption(existing)) {
          throw new ConfigError(
            `\`${file}' declares options under \`${showPath(childPath)}', which \`${this.declaredIn.get(pathKey(childPath)) ?? "another module"}' declares as an option.\n` +
              "Fix: choose another name for the group.",
          );
        }
        if (existing === undefined) node[key] = {};
        this.declare(declared, file, childPath);
      }
    }
  }

  private proxy(path: Path): unknown {
    const node = (): OptionTree => this.lookup(path) as OptionTree;
    return new Proxy(
      {},
      {
        get: (_target, key) => {
          if (typeof key === "symbol") return undefined;
          const child = node()[key];
          const childPath = [...path, key];
          if (child === undefined) {
            throw new ConfigError(
              `A module reads \`config.${showPath(childPath)}', which is not an option.\n` +
                `Fix: check the spelling; \`keel options ${showPath(path)}' lists what exists.`,
            );
          }
          return isOption(child) ? this.valueOf(childPath, child) : this.proxy(childPath);
        },
        has: (_target, key) => typeof key === "string" && key in node(),
        ownKeys: () => Object.keys(node()),
        getOwnPropertyDescriptor: (_target, key) =>
          typeof key === "string" && key in node() ? { enumerable: true, configurable: true } : undefined,
      },
    );
  }

  private cycle(path: Path): ConfigError {
    const start = this.stack.findIndex((f) => f.kind === "option" && pathKey(f.path) === pathKey(path));
    const frames = this.stack.slice(start);
    const options = frames.flatMap((f) => (f.kind === "option" ? [`\`${showPath(f.path)}'`] : []));
    const files = [...new Set(frames.flatMap((f) => (f.kind === "module" ? [`\`${f.entry.file}'`] : [])))];
    return new ConfigError(
      `Infinite recursion: the option \`${showPath(path)}' depends on itself: ${[...options, `\`${showPath(path)}'`].join(" → ")}.\n` +
        (files.length > 0 ? `Read by the module functions in ${files.join(", ")}.\n` : "") +
        "Fix: break the cycle, or read the option in a getter (`get x() { return config.a.b; }`), which is evaluated only when needed.",
    );
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
      const file = (culprit ?? late)?.file;
      throw new ConfigError(
        `Infinite recursion: \`${file}' defines the option \`${showPath(read.path)}', and its value was needed to compute that module's own definitions.\n` +
          `Fix: read it in a getter (\`get x() { return config.${showPath(read.path)}; }\`), which is evaluated only when needed, or move the definition of \`${showPath(read.path)}' to another module.`,
      );
    }
    return undefined;
  }
}

interface ModuleParts {
  readonly imports: readonly ModuleInput[];
  readonly options: unknown;
  readonly config: unknown;
}

/** Splits a module into imports, options and definitions, as NixOS's `unifyModuleSyntax`. */
function parts(file: string, module: unknown): ModuleParts {
  if (!isRecord(module)) {
    throw new ConfigError(
      `The module function in \`${file}' returned ${module === undefined ? "nothing" : "something that is not a record"}.\n` +
        "Fix: return a module, e.g. `({ config }) => ({ networking: { hostName: \"x\" } })`.",
    );
  }
  const { imports = [], options, config, ...loose } = module;
  const hasParts = "options" in module || "config" in module;
  if (hasParts && Object.keys(loose).length > 0) {
    throw new ConfigError(
      `The module in \`${file}' has \`options' or \`config' and also definitions at its top level (${Object.keys(loose).join(", ")}).\n` +
        "Fix: move those definitions into `config`.",
    );
  }
  if (!Array.isArray(imports)) {
    throw new ConfigError(`\`imports' in \`${file}' must be a list of modules.\nFix: write \`imports: [common]'.`);
  }
  return { imports, options, config: hasParts ? config : loose };
}

function callModule(fn: (args: unknown) => unknown, args: unknown, file: string): unknown {
  try {
    return fn(args);
  } catch (error) {
    if (error instanceof ConfigError || error instanceof Wait) throw error;
    throw new ConfigError(
      `The module function in \`${file}' threw: ${error instanceof Error ? error.message : String(error)}\n` +
        "Fix: correct the module; run with --debug to see where it threw.",
      { cause: error },
    );
  }
}

export function evaluateModules(args: EvalArgs): Evaluation {
  const waits: Waits = new Map();
  for (;;) {
    const evaluation = new Evaluation(args, waits);
    const conflict = evaluation.conflict();
    if (conflict === undefined) return evaluation;
    const paths = waits.get(conflict.module) ?? new Set<string>();
    paths.add(conflict.path);
    waits.set(conflict.module, paths);
  }
}
