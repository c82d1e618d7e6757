// Turns a project's config files into JavaScript modules in keel's cache, one
// module per source file, and imports them with Node's own loader. Loading
// through loader hooks (tsx) cost half a second on every command; a compiled
// project is reused until one of its files changes, so most commands load
// plain JavaScript and never start esbuild.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { pathToFileURL } from "node:url";
import type { BuildFailure, Message, Plugin } from "esbuild";
import { ConfigError, UsageError } from "../errors.js";
import { hashFile } from "../host/facts.js";
import { keelRoot } from "../version.js";
import { importSpecifier } from "./module.js";

/** A config file as compiled: its module's name in the cache, its exports, the config files it imports. */
export interface ConfigModule {
  readonly output: string;
  readonly exports: readonly string[];
  readonly imports: readonly string[];
}

/** The project's config files by path. */
export type ConfigModules = Readonly<Record<string, ConfigModule>>;

interface Manifest {
  readonly key: string;
  readonly files: Readonly<Record<string, string>>;
  readonly entry: string;
  readonly modules: ConfigModules;
}

export type ConfigNamespace = { default?: unknown };

export interface ImportedProject {
  readonly namespace: ConfigNamespace;
  readonly modules: ConfigModules;
}

/** The project file's module namespace, compiled again only when a file it is made of changed. */
export async function importProject(projectFile: string, cacheDir: string, keelVersion: string): Promise<ImportedProject> {
  // Compiled modules import keel and packages by absolute path: another keel install compiles anew.
  const key = `${keelVersion} ${esbuildVersion()} ${keelRoot}`;
  const base = path.join(cacheDir, "config", createHash("sha256").update(projectFile).digest("hex").slice(0, 32));
  const cached = upToDate(`${base}.json`, key);
  // Stack traces (and so the file each module is noted with) name the .ts files, as the editor does.
  process.setSourceMapsEnabled(true);
  if (cached !== undefined) {
    try {
      return await importCompiled(cached);
    } catch (error) {
      // A package moved, or another keel replaced this compilation meanwhile: compile again.
      if ((error as { code?: string }).code !== "ERR_MODULE_NOT_FOUND") throw error;
    }
  }
  return importCompiled(await compile(projectFile, base, key));
}

async function importCompiled(manifest: Manifest): Promise<ImportedProject> {
  try {
    return { namespace: (await import(pathToFileURL(manifest.entry).href)) as ConfigNamespace, modules: manifest.modules };
  } catch (error) {
    throw linkError(error, manifest.modules) ?? error;
  }
}

/**
 * Node's "does not provide an export named" names the compiled module and
 * points at the importing line: said again with the source files and what the
 * imported file does export.
 */
function linkError(error: unknown, modules: ConfigModules): ConfigError | undefined {
  if (!(error instanceof SyntaxError)) return undefined;
  const match = /^The requested module '\.\/([^']+)' does not provide an export named '([^']+)'/.exec(error.message);
  const importer = /^(\/[^\n]*?):\d+\n/.exec(error.stack ?? "")?.[1];
  if (match === null || importer === undefined) return undefined;
  const [, output, name] = match as unknown as [string, string, string];
  const imported = Object.entries(modules).find(([, m]) => m.output === output);
  if (imported === undefined) return undefined;
  const [file, module] = imported;
  const exports = module.exports.filter((e) => e !== "default");
  const specifier = importSpecifier(importer, file);
  const fix =
    name === "default"
      ? `end \`${file}' with \`export default defineModule({ … })'` +
        (exports.length > 0 ? `, or import what it exports by name: \`import { ${exports[0]} } from "${specifier}"'.` : ".")
      : `import one of the names it exports, or export \`${name}' from it.`;
  return new ConfigError(
    `\`${importer}' imports ${name === "default" ? "the default export" : `\`${name}'`} of \`${file}', which has none. ` +
      `It exports: ${exports.join(", ") || "nothing"}${module.exports.includes("default") ? " and a default" : ""}.\nFix: ${fix}`,
  );
}

/** esbuild's version, read without loading esbuild. */
function esbuildVersion(): string {
  const require = createRequire(import.meta.url);
  return (JSON.parse(readFileSync(require.resolve("esbuild/package.json"), "utf8")) as { version: string }).version;
}

function upToDate(manifestPath: string, key: string): Manifest | undefined {
  try {
    const manifest = JSON.parse(readFileSync(manifestPath, "utf8")) as Manifest;
    const fresh = manifest.key === key && manifest.modules !== undefined && Object.entries(manifest.files).every(([file, hash]) => hashFile(file) === hash);
    return fresh && existsSync(manifest.entry) ? manifest : undefined;
  } catch {
    return undefined;
  }
}

// Files that become modules of their own; anything else imported (JSON) is inlined into its importer.
const moduleExtension = /\.(?:[cm]?[jt]s|[jt]sx)$/;

/**
 * Compiles each config file on its own into `<base>-<content hash>/`, imports
 * between them rewritten to the compiled siblings, packages (keel among them)
 * to the file Node would load, so that there is one keel at run time.
 */
async function compile(projectFile: string, base: string, key: string): Promise<Manifest> {
  const esbuild = await import("esbuild");
  const temporary = `${base}.${process.pid}.tmp`;
  rmSync(temporary, { recursive: true, force: true });
  try {
    mkdirSync(temporary, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new UsageError(
      `keel cannot write its cache of compiled config files, ${path.dirname(base)}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}.\n` +
        "Fix: make that directory yours, or point XDG_CACHE_HOME (or HOME) at a directory you can write.",
    );
  }
  const outputs = new Map<string, string>();
  const queue: string[] = [];
  const outputOf = (source: string): string => {
    let output = outputs.get(source);
    if (output === undefined) {
      output = `${outputs.size}-${path.basename(source).replace(moduleExtension, "")}.mjs`;
      outputs.set(source, output);
      queue.push(source);
    }
    return output;
  };
  const resolving = Symbol("resolving");
  const modules: Plugin = {
    name: "keel-config-modules",
    setup(build) {
      build.onResolve({ filter: /.*/ }, async (args) => {
        if (args.kind === "entry-point" || args.pluginData === resolving) return undefined;
        const resolved = await build.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, importer: args.importer, pluginData: resolving });
        // esbuild's own resolution then reports the import that fails, at its line.
        if (resolved.errors.length > 0) return undefined;
        if (resolved.external) return { path: resolved.path, external: true };
        if (!/^[./]/.test(args.path)) return { path: pathToFileURL(resolved.path).href, external: true };
        return moduleExtension.test(resolved.path) ? { path: `./${outputOf(resolved.path)}`, external: true } : undefined;
      });
    },
  };
  const files: Record<string, string> = {};
  const compiled: Record<string, ConfigModule> = {};
  outputOf(projectFile);
  try {
    for (const source of queue) {
      const result = await esbuild.build({
        entryPoints: [source],
        outfile: path.join(temporary, outputOf(source)),
        absWorkingDir: "/",
        bundle: true,
        format: "esm",
        platform: "node",
        target: "node20",
        conditions: [],
        sourcemap: "inline",
        sourcesContent: false,
        // The compiler options the type check uses, whatever tsconfig.json is near.
        tsconfigRaw: { compilerOptions: { target: "ES2022", strict: true } },
        define: fileConstants(source),
        metafile: true,
        logLevel: "silent",
        plugins: [modules],
      });
      const output = Object.values(result.metafile.outputs)[0];
      const sourceOf = new Map([...outputs].map(([file, name]) => [`./${name}`, file]));
      compiled[source] = {
        output: outputOf(source),
        exports: output?.exports ?? [],
        imports: (output?.imports ?? []).flatMap((i) => sourceOf.get(i.path) ?? []),
      };
      for (const input of Object.keys(result.metafile.inputs)) {
        const file = path.resolve("/", input);
        const hash = hashFile(file);
        if (hash !== undefined) files[file] = hash;
      }
    }
  } catch (error) {
    rmSync(temporary, { recursive: true, force: true });
    throw compileError(error);
  }
  const contents = createHash("sha256").update(JSON.stringify(Object.entries(files).sort())).digest("hex").slice(0, 16);
  const dir = `${base}-${contents}`;
  try {
    renameSync(temporary, dir);
  } catch (error) {
    // Another keel compiled the same files first (two commands right after an edit): its copy is this one.
    const code = (error as NodeJS.ErrnoException).code;
    if ((code !== "ENOTEMPTY" && code !== "EEXIST") || !existsSync(dir)) throw error;
    rmSync(temporary, { recursive: true, force: true });
  }
  const entry = path.join(dir, outputOf(projectFile));
  const manifest: Manifest = { key, files, entry, modules: compiled };
  const previous = readPrevious(`${base}.json`);
  writeManifest(`${base}.json`, manifest);
  if (previous !== undefined && path.dirname(previous) !== dir) rmSync(path.dirname(previous), { recursive: true, force: true });
  return manifest;
}

/** What a module learns about its own file: the source's, not the compiled copy's. */
function fileConstants(source: string): Record<string, string> {
  const file = JSON.stringify(source);
  const dir = JSON.stringify(path.dirname(source));
  return {
    "import.meta.url": JSON.stringify(pathToFileURL(source).href),
    "import.meta.filename": file,
    "import.meta.dirname": dir,
    __filename: file,
    __dirname: dir,
  };
}

/** esbuild's messages as keel's: syntax errors at file:line:col, a missing import by name. */
function compileError(error: unknown): Error {
  const messages = (error as Partial<BuildFailure>).errors;
  if (messages === undefined || messages.length === 0) return error as Error;
  const at = (m: Message): string => (m.location ? `${path.resolve("/", m.location.file)}:${m.location.line}:${m.location.column + 1}` : "");
  const missing = messages.find((m) => /^Could not resolve "/.test(m.text));
  if (missing !== undefined) {
    const specifier = /^Could not resolve "([^"]*)"/.exec(missing.text)?.[1] ?? "";
    const importer = missing.location ? path.resolve("/", missing.location.file) : "";
    return new ConfigError(
      `\`${importer}' imports \`${specifier}', which cannot be found.\n` +
        "Fix: check the path in that import statement: a relative import starts with ./ and names an existing file; a package must be installed (npm install).",
    );
  }
  // esbuild reports a missing comma between two properties or elements at the next one, as a missing closing bracket.
  const hint = (m: Message): string => (/^Expected "[}\])]" but found "/.test(m.text) ? " (is a comma missing before it?)" : "");
  const lines = messages.map((m) => `${at(m)} - ${m.text}${hint(m)}`);
  return new ConfigError(`The project's config files do not parse:\n${lines.join("\n")}\nFix: correct the syntax at the places above.`);
}

function readPrevious(manifestPath: string): string | undefined {
  try {
    return (JSON.parse(readFileSync(manifestPath, "utf8")) as Manifest).entry;
  } catch {
    return undefined;
  }
}

function writeManifest(manifestPath: string, manifest: Manifest): void {
  const temporary = `${manifestPath}.${process.pid}.tmp`;
  writeFileSync(temporary, JSON.stringify(manifest));
  renameSync(temporary, manifestPath);
}
