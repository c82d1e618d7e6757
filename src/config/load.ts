// Finding and loading keel.config.ts. The file and the modules it imports are
// TypeScript, compiled by esbuild (compile.ts) after TypeScript has checked them.
import { existsSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { ConfigError, UsageError, isKeelError } from "../errors.js";
import { blame, userCode, userFrame } from "./blame.js";
import { importProject, type ImportedProject } from "./compile.js";
import { noteFile } from "./module.js";
import { evaluateSystem, validateProject, type Project } from "./project.js";
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
    if (statSync(file).isDirectory()) {
      const inside = path.join(file, projectFileName);
      throw new UsageError(
        `--project: \`${file}' is a directory; --project takes the project file.\n` +
          (existsSync(inside) ? `Fix: --project ${inside}` : `Fix: give the path of a keel.config.ts (\`${file}' has none).`),
      );
    }
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

/**
 * The project, type-checked unless told otherwise. When the check finds errors,
 * keel's own evaluation of every system runs first: a mistake it sees is
 * reported in its words (the option, the file, "did you mean", the fix); the
 * type errors are reported only when evaluation finds nothing.
 */
export async function loadProject(file: string, options: LoadOptions): Promise<Project> {
  const typeErrors = options.typecheck ? await typecheckProject(file, cacheDir(options.env), keelVersion) : undefined;
  const project = await importAndValidate(file, options);
  if (typeErrors === undefined) return project;
  for (const name of project.systems.keys()) evaluateSystem(project, name);
  throw typeErrors;
}

async function importAndValidate(file: string, options: LoadOptions): Promise<Project> {
  let imported: ImportedProject;
  try {
    imported = await importProject(file, cacheDir(options.env), keelVersion);
  } catch (error) {
    throw importError(file, error);
  }
  const { namespace } = imported;
  let exported = namespace.default;
  // A file written as CommonJS (`module.exports = …`) exports its exports
  // object, which holds the default export when it was compiled from ESM.
  if (typeof exported === "object" && exported !== null && Object.keys(exported).every((k) => k === "default" || k === "__esModule") && "default" in exported) {
    exported = (exported as { default: unknown }).default;
  }
  if (exported === undefined) {
    throw new ConfigError(
      `\`${file}' has no default export.\nFix: end it with \`export default defineProject({ systems: { … } })'.`,
    );
  }
  if (typeof exported === "function") {
    const projectFunction = exported as () => unknown;
    exported = await userCode(projectFunction, () => `The project function in \`${file}'`, "correct the function at that line; --debug shows the whole stack.");
  }
  const imports = new Map(Object.entries(imported.modules).map(([source, m]) => [source, m.imports]));
  const project = validateProject(file, exported, imports);
  // Modules written inline in keel.config.ts (not through defineModule) belong to it.
  for (const modules of project.systems.values()) for (const m of modules) if (typeof m === "object" || typeof m === "function") noteFile(m, file);
  return project;
}

function importError(file: string, error: unknown): Error {
  if (isKeelError(error)) return error;
  const thrower = userFrame(error)?.file ?? file;
  return blame(error, `While \`${file}' was loaded, \`${thrower}'`, "correct the code at that line; --debug shows the whole stack.");
}
