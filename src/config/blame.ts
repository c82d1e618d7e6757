// Blaming the user's file for what the user's code threw: a module function,
// a getter, a project function, a config file while it is imported. The place
// is the first stack frame outside keel and Node (source maps make it the
// .ts file and line the user wrote).
import path from "node:path";
import { ConfigError, isKeelError } from "../errors.js";
import { keelRoot } from "../version.js";
import { stackFrames, type Frame } from "./module.js";

const keelCode = ["bin", "dist", "src"].map((dir) => path.join(keelRoot, dir) + path.sep);

/** Unwinds a module's computation that must wait for other modules; never the user's failure. */
export class Wait {}

/** The first frame of `error`'s stack that is in the user's code, not in this copy of keel. */
export function userFrame(error: unknown): Frame | undefined {
  return stackFrames(error instanceof Error ? error.stack : undefined).find((frame) => !keelCode.some((dir) => frame.file.startsWith(dir)));
}

/** What the user's code threw, as a ConfigError: what threw, the message, where, the fix. */
export function blame(error: unknown, what: string, fix: string): ConfigError {
  const message = error instanceof Error ? error.message : String(error);
  const where = userFrame(error);
  const at = where === undefined ? "" : `\nThrown at ${where.file}:${where.line}:${where.column}.`;
  return new ConfigError(`${what} threw: ${message}${at}\nFix: ${fix}`, { cause: error });
}

/**
 * Runs the user's code; keel's own errors and waits pass through, anything
 * else is blamed on it, whether it throws or (for a promise) rejects.
 */
export function userCode<T>(run: () => T, what: () => string, fix: string): T {
  const rethrow = (error: unknown): never => {
    if (isKeelError(error) || error instanceof Wait) throw error;
    throw blame(error, what(), fix);
  };
  try {
    const result = run();
    return (result instanceof Promise ? result.catch(rethrow) : result) as T;
  } catch (error) {
    return rethrow(error);
  }
}
