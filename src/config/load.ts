// Finding and loading keel.config.ts. The file and the modules it imports are
// TypeScript, run through tsx (esbuild) after TypeScript has checked them.
import { existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { ConfigError, UsageError } from "../errors.js";
import { noteFile } from "./module.js";
import { validateProject, type Project } from "./project.js";
import { typecheckProject } from "./typecheck.js";
import { keelVersion } from "../version.js";

const projectFileName = "keel.config.ts";

/** keel's cache directory: $XDG_CACHE_HOME/keel, or ~/.cache/keel. */
export function cacheDir(env: NodeJS.ProcessEnv): string {
  return path.join(env.XDG_CACHE_HOME || path.join(env.HOME || os.homedir(), ".cache"), "keel");
}

/** The project file: `--project` if given, else keel.config.ts in the nearest directory upwards. */
export function findProjectFile(cwd: string, explicit: string | undefined): string {
  if (explicit !== undefined) {
    const file = path.resolve(cwd, explicit);
    if (!existsSync(file)) throw new UsageError(`--project: \`${file}' does not exist.\nFix: give the path of a keel.config.ts.`);
    return file;
  }
  for (let dir = path.resolve(cwd); ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, projectFileName);
    if (existsSync(candidate)) return candidate;
    if (path.dirname(dir) === dir) break;
  }
  throw new UsageError(
    `No ${projectFileName} in \`${cwd}' or any directory above it.\n` +
      "Fix: run keel inside a project, or give one with --project path/to/keel.config.ts (examples/seed has one).",
  );
}

export interface LoadOptions {
  readonly typecheck: boolean;
  readonly env: NodeJS.ProcessEnv;
}

export async function loadProject(file: string, options: LoadOptions): Promise<Project> {
  if (options.typecheck) await typecheckProject(file, cacheDir(options.env), keelVersion);
  const { tsImport } = await import("tsx/esm/api");
  let namespace: { default?: unknown };
  try {
    namespace = (await tsImport(file, import.meta.url)) as { default?: unknown };
  } catch (error) {
    throw importError(file, error);
  }
  let exported = namespace.default;
  // Outside a package with "type": "module", tsx loads the file as CommonJS and
  // the default export arrives wrapped once more.
  if (typeof exported === "object" && exported !== null && Object.keys(exported).every((k) => k === "default" || k === "__esModule") && "default" in exported) {
    exported = (exported as { default: unknown }).default;
  }
  if (exported === undefined) {
    throw new ConfigError(
      `\`${file}' has no default export.\nFix: end it with \`export default defineProject({ systems: { … } })'.`,
    );
  }
  if (typeof exported === "function") exported = await (exported as () => unknown)();
  const project = validateProject(file, exported);
  // Modules written inline in keel.config.ts (not through defineModule) belong to it.
  for (const modules of project.systems.values()) for (const m of modules) if (typeof m === "object" || typeof m === "function") noteFile(m, file);
  return project;
}

function importError(file: string, error: unknown): Error {
  if (error instanceof ConfigError) return error;
  const message = error instanceof Error ? error.message : String(error);
  // esbuild's parse errors: "<file>:<line>:<column>: ERROR: <text>", column from 0.
  const parseErrors = [...message.matchAll(/^(.*):(\d+):(\d+): ERROR: (.*)$/gm)];
  if (parseErrors.length > 0) {
    const lines = parseErrors.map(([, at, line, column, text]) => `${at}:${line}:${Number(column) + 1} - ${text}`);
    return new ConfigError(`The project's config files do not parse:\n${lines.join("\n")}\nFix: correct the syntax at the places above.`);
  }
  const code = (error as { code?: string }).code;
  const missing = /Cannot find (?:module|package) '([^']+)'/.exec(message)?.[1];
  if ((code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND") && missing !== undefined) {
    const importer = /imported from (\S+)/.exec(message)?.[1] ?? /Require stack:\n- (\S+)/.exec(message)?.[1] ?? file;
    return new ConfigError(
      `\`${importer.replace(/^file:\/\//, "").replace(/\?.*$/, "")}' imports \`${missing}', which cannot be found.\n` +
        "Fix: check the path in that import statement: a relative import starts with ./ and names an existing file; a package must be installed (npm install).",
    );
  }
  return new ConfigError(`Loading \`${file}' failed: ${message}\nFix: correct the config file; --debug shows where it failed.`, {
    cause: error,
  });
}
