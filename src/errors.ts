// The kinds of failure keel reports. Only the CLI entry point catches
// them; each message is complete on its own and ends with the fix.

/** The command line was wrong: unknown flag, missing argument, unknown system. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** The configuration was wrong: a module, an option value, a project file. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

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

export function isKeelError(error: unknown): error is UsageError | ConfigError | ProcessError | VmError {
  return error instanceof UsageError || error instanceof ConfigError || error instanceof ProcessError || error instanceof VmError;
}
