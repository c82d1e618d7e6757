// Blaming the user's file for what the user's code threw: a module function,
// a getter, a project function, a config file while it is imported. The place
// is the first stack frame outside keel and Node (source maps make it the
// .ts file and line the user wrote).
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ConfigError, isKeelError } from "../errors.js";
import { keelRoot } from "../version.js";

const keelCode = ["bin", "dist", "src"].map((dir) => path.join(keelRoot, dir) + path.sep);

/** Whether a file is part of this copy of keel (its source, its build, its entry point). */
export function isKeelFile(file: string): boolean {
  return keelCode.some((dir) => file.startsWith(dir));
}

/** Unwinds a module's computation that must wait for other modules; never the user's failure. */
export class Wait {}

/** `file:line:col` of the first frame of `error`'s stack that is in the user's code. */
export function userLocation(error: unknown): string | undefined {
  const stack = error instanceof Error ? (error.stack ?? "") : "";
  for (const line of stack.split("\n").slice(1)) {
    const match = /\((.+):(\d+):(\d+)\)$/.exec(line) ?? /at (?:async )?(.+):(\d+):(\d+)$/.exec(line);
    if (match === null) continue;
    let file = match[1] as string;
    if (file.startsWith("node:") || file.startsWith("data:")) continue;
    if (file.startsWith("file://")) file = fileURLToPath(file);
    if (isKeelFile(file)) continue;
    return `${file}:${match[2]}:${match[3]}`;
  }
  return undefined;
}

/** What the user's code threw, as a ConfigError: what threw, the message, where, the fix. */
export function blame(error: unknown, what: string, fix: string): ConfigError {
  const message = error instanceof Error ? error.message : String(error);
  const where = userLocation(error);
  return new ConfigError(`${what} threw: ${message}${where === undefined ? "" : `\nThrown at ${where}.`}\nFix: ${fix}`, { cause: error });
}

/** Runs the user's code; keel's own errors and waits pass through, anything else is blamed on it. */
export function userCode<T>(run: () => T, what: () => string, fix: string): T {
  try {
    return run();
  } catch (error) {
    if (isKeelError(error) || error instanceof Wait) throw error;
    throw blame(error, what(), fix);
  }
}
