// Type-checks a project's config files with TypeScript before they run, so a
// wrong option type is reported at file:line:col as the editor shows it. The
// result is remembered per project file until one of its files changes.
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync, existsSync, renameSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import type { DiagnosticMessageChain } from "typescript";
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

export async function typecheckProject(projectFile: string, cacheDir: string, keelVersion: string): Promise<void> {
  const key = `${keelVersion} ${typescriptVersion()}`;
  const manifestPath = path.join(cacheDir, "typecheck", `${createHash("sha256").update(projectFile).digest("hex").slice(0, 32)}.json`);
  if (isUpToDate(manifestPath, key)) return;

  const ts = (await import("typescript")).default;
  const program = ts.createProgram([projectFile], {
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
  });
  const diagnostics = ts.getPreEmitDiagnostics(program).filter((d) => d.category === ts.DiagnosticCategory.Error);
  if (diagnostics.length > 0) {
    const shown = diagnostics.slice(0, maxShown).map((d) => {
      const text = messageLines(d.messageText).join("\n    ");
      if (d.file === undefined || d.start === undefined) return `error TS${d.code}: ${text}`;
      const { line, character } = d.file.getLineAndCharacterOfPosition(d.start);
      return `${d.file.fileName}:${line + 1}:${character + 1} - error TS${d.code}: ${text}`;
    });
    const more = diagnostics.length > maxShown ? `\n(and ${diagnostics.length - maxShown} more)` : "";
    throw new ConfigError(
      `The project's config files have ${diagnostics.length === 1 ? "an error" : `${diagnostics.length} errors`}:\n${shown.join("\n")}${more}\n` +
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
  return kept.map(shortenTypes);
}

/** keel's option types print as pages of text; the start of one names it well enough. */
function shortenTypes(line: string): string {
  return line.replace(/'([^']{100,})'/g, (_quoted, type: string) => `'${type.slice(0, 60)}…'`);
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
