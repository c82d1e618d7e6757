// The kinds of failure keel reports. Only the CLI entry point catches
// them; each message is complete on its own and ends with the fix.
//
// Each kind is recognised by a brand, not by its class: a config that loads
// another copy of keel (a second install) throws that copy's classes, and its
// errors are still the user's, never "a bug in keel".

const brand = Symbol.for("keel.error");

export type ErrorKind = "usage" | "config" | "process" | "vm" | "machine";

function mark(constructor: { prototype: object }, kind: ErrorKind): void {
  Object.defineProperty(constructor.prototype, brand, { value: kind });
}

/** The command line was wrong: unknown flag, missing argument, unknown system. */
export class UsageError extends Error {
  override name = "UsageError";
}
mark(UsageError, "usage");

/** The configuration was wrong: a module, an option value, a project file. */
export class ConfigError extends Error {
  override name = "ConfigError";
}
mark(ConfigError, "config");

/** A program keel ran failed. */
export class ProcessError extends Error {
  override name = "ProcessError";
  constructor(
    message: string,
    readonly argv: readonly string[],
    readonly exitCode: number | null,
    readonly signal: string | null,
    readonly outputTail: string,
    readonly logPath?: string,
  ) {
    super(message);
  }
}
mark(ProcessError, "process");

/** A virtual machine failed to start, died, or did not answer in time; the message quotes its console's last lines. */
export class VmError extends Error {
  override name = "VmError";
  constructor(
    message: string,
    readonly logPath: string,
  ) {
    super(message);
  }
}
mark(VmError, "vm");

/** A machine keel writes to did not end up as keel wrote it (a partition that did not appear, a file that reads back different). */
export class MachineError extends Error {
  override name = "MachineError";
}
mark(MachineError, "machine");

/** The kind of a keel error, from any copy of keel; undefined for anything else. */
export function errorKind(error: unknown): ErrorKind | undefined {
  if (typeof error !== "object" || error === null) return undefined;
  const kind = (error as { [brand]?: unknown })[brand];
  return kind === "usage" || kind === "config" || kind === "process" || kind === "vm" || kind === "machine" ? kind : undefined;
}

export function isKeelError(error: unknown): error is UsageError | ConfigError | ProcessError | VmError {
  return errorKind(error) !== undefined;
}
