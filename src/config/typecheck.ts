// Type-checks a project's config files with TypeScript before they run, so a
// wrong option type is reported at file:line:col as the editor shows it. The
// result is remembered per project file until one of its files changes.
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync, existsSync, renameSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import type { CompilerOptions, DiagnosticMessageChain, Program } from "typescript";
import { ConfigError } from "../errors.js";
import { hashFile } from "../host/facts.js";

const maxShown = 10;

interface Manifest {
  readonly key: string;
  readonly files: Readonly<Record<string, string>>;
}

/** TypeScript's version, read without loading the compiler (that takes half a second). */
function typescriptVersion(): string {
  const require = createRequire(import.meta.url);
  return (JSON.parse(readFileSync(require.resolve("typescript/package.json"), "utf8")) as { version: string }).version;
}

/** Node's types, from the @types/node keel depends on. */
function nodeTypes(): string {
  const require = createRequire(import.meta.url);
  return path.join(path.dirname(require.resolve("@types/node/package.json")), "index.d.ts");
}

// "Cannot find module 'node:fs'", "Cannot find name 'process'" and their
// "do you need to install type definitions for node?" forms.
const needsNode = new Set([2307, 2304, 2580, 2591, 2503]);

/**
 * The project's type errors as one ConfigError (undefined when there are none).
 * Node's types are added only for a config that turns out to use Node, so a
 * config that does not pays nothing for them.
 */
export async function typecheckProject(projectFile: string, cacheDir: string, keelVersion: string): Promise<ConfigError | undefined> {
  const key = `${keelVersion} ${typescriptVersion()}`;
  const manifestPath = path.join(cacheDir, "typecheck", `${createHash("sha256").update(projectFile).digest("hex").slice(0, 32)}.json`);
  if (isUpToDate(manifestPath, key)) return undefined;

  const ts = (await import("typescript")).default;
  const options: CompilerOptions = {
    strict: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    allowImportingTsExtensions: true,
    resolveJsonModule: true,
    skipLibCheck: true,
    types: [],
    lib: ["lib.es2023.d.ts"],
  };
  const errorsOf = (program: Program) => ts.getPreEmitDiagnostics(program).filter((d) => d.category === ts.DiagnosticCategory.Error);
  let program = ts.createProgram([projectFile], options);
  let diagnostics = errorsOf(program);
  if (diagnostics.some((d) => needsNode.has(d.code) && /\bnode\b|'(?:process|Buffer|URL|URLSearchParams|__dirname|__filename|require|global)'/.test(flatten(d.messageText)))) {
    program = ts.createProgram({ rootNames: [projectFile, nodeTypes()], options, oldProgram: program });
    diagnostics = errorsOf(program);
  }
  if (diagnostics.length > 0) {
    const shown = diagnostics.slice(0, maxShown).map((d) => {
      const text = messageLines(d.messageText).join("\n    ");
      if (d.file === undefined || d.start === undefined) return text;
      const { line, character } = d.file.getLineAndCharacterOfPosition(d.start);
      return `${d.file.fileName}:${line + 1}:${character + 1} - ${text}`;
    });
    const more = diagnostics.length > maxShown ? `\n(and ${diagnostics.length - maxShown} more)` : "";
    return new ConfigError(
      `The project's config files have ${diagnostics.length === 1 ? "a type error" : `${diagnostics.length} type errors`}:\n${shown.join("\n")}${more}\n` +
        "Fix: correct the code at the places above; an editor with TypeScript shows the same errors as you type.",
    );
  }
  const files: Record<string, string> = {};
  for (const source of program.getSourceFiles()) {
    if (program.isSourceFileDefaultLibrary(source) || source.fileName.includes("/node_modules/")) continue;
    const hash = hashFile(source.fileName);
    if (hash !== undefined) files[source.fileName] = hash;
  }
  writeManifest(manifestPath, { key, files });
  return undefined;
}

function flatten(message: string | DiagnosticMessageChain): string {
  return typeof message === "string" ? message : [message.messageText, ...(message.next ?? []).map(flatten)].join(" ");
}

/**
 * TypeScript explains a mismatch from the outside in; the first line and the
 * innermost ones (the property and the types that differ) are what a user needs.
 */
function messageLines(message: string | DiagnosticMessageChain): string[] {
  const lines: string[] = [];
  for (let chain: string | DiagnosticMessageChain | undefined = message; chain !== undefined; ) {
    if (typeof chain === "string") {
      lines.push(chain);
      break;
    }
    lines.push(chain.messageText);
    chain = chain.next?.[0];
  }
  const kept = lines.length <= 4 ? lines : [lines[0] as string, "…", ...lines.slice(-3)];
  return kept.map(userTypes);
}

// keel's own type names, which mean nothing to a config's author.
const internalType = /\b(?:Wrapped|DefinitionsOf|ResolvedOf|Option|OptionTree|ModuleParts|ModuleObject|ModuleFunction|ModuleArgs|Definitions|BuiltinOptions|ProjectSpec|ProjectExport|NoInfer|Property|Override|Order|If|Merge)</;

/** A quoted type as a user knows it: keel's types by what they are, long types cut short. */
function userTypes(line: string): string {
  return line.replace(/'([^'\n]*)'/g, (quoted, type: string) => {
    if (/^\(?project: ProjectSpec\)?/.test(type) || /\bProjectSpec\b/.test(type)) return "a project (defineProject's argument)";
    if (/\bModule(?:Object|Function)\b/.test(type)) return "a module (defineModule's argument)";
    if (internalType.test(type)) return "keel's options there";
    return type.length > 100 ? `'${type.slice(0, 60)}…'` : quoted;
  });
}

function isUpToDate(manifestPath: string, key: string): boolean {
  if (!existsSync(manifestPath)) return false;
  try {
    const manifest = JSON.parse(readFileSync(manifestPath, "utf8")) as Manifest;
    return manifest.key === key && Object.entries(manifest.files).every(([file, hash]) => hashFile(file) === hash);
  } catch {
    return false;
  }
}

function writeManifest(manifestPath: string, manifest: Manifest): void {
  mkdirSync(path.dirname(manifestPath), { recursive: true });
  const temporary = `${manifestPath}.${process.pid}.tmp`;
  writeFileSync(temporary, JSON.stringify(manifest));
  renameSync(temporary, manifestPath);
}
