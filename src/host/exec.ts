// The one way keel runs a program: an argv (never a shell string), output
// streamed to a log, and a failure turned into a ProcessError that quotes the
// command line, the exit code or signal, and the tail of the output.
import { spawn } from "node:child_process";
import { createWriteStream, type WriteStream } from "node:fs";
import os from "node:os";
import { ProcessError } from "../errors.js";

export interface ExecOptions {
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Appends the command line and its output here. */
  readonly log?: string;
  /** Called with each chunk of output (stdout and stderr together). */
  readonly onOutput?: (text: string) => void;
  /** Kills the process after this many milliseconds. */
  readonly timeout?: number;
  /** Kills the process as soon as its output so far matches (a probe that has its answer). */
  readonly stopWhen?: RegExp;
  /** Returns a failed result instead of throwing. */
  readonly nothrow?: boolean;
  /** Stops the process (SIGTERM to its process group); a string reason is told in the error. */
  readonly signal?: AbortSignal;
}

export interface ExecResult {
  readonly argv: readonly string[];
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
  /** Whether `stopWhen` matched and the process was stopped for it. */
  readonly stopped: boolean;
}

const tailLines = 30;

/** Quotes an argv for display (and for pasting into a shell). */
export function showCommand(argv: readonly string[]): string {
  return argv.map(shellQuote).join(" ");
}

/** Quotes one word for a POSIX shell: the only way keel builds shell text. */
export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`;
}

export function exec(argv: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
  const [program, ...args] = argv;
  if (program === undefined) throw new Error("exec: empty argv");
  const log: WriteStream | undefined = options.log ? createWriteStream(options.log, { flags: "a" }) : undefined;
  // A log that cannot be written must not take keel down; the tool's own result decides.
  log?.on("error", () => undefined);
  log?.write(`$ ${showCommand(argv)}\n`);
  return new Promise((resolve, reject) => {
    // Each program gets its own process group: some (mmdebstrap) signal their
    // whole group when they clean up, which must not reach keel. Stopping a
    // program therefore signals its group, so that its children stop too.
    const child = spawn(program, args, { cwd: options.cwd, env: options.env, stdio: ["ignore", "pipe", "pipe"], detached: true });
    const killGroup = (signal: NodeJS.Signals): void => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, signal);
      } catch {
        // Already gone.
      }
    };
    let settled = false;
    let stopReason: string | undefined;
    const abort = (): void => {
      const reason: unknown = options.signal?.reason;
      stopReason = typeof reason === "string" ? reason : "keel was interrupted";
      killGroup("SIGTERM");
    };
    if (options.signal?.aborted) abort();
    else options.signal?.addEventListener("abort", abort, { once: true });
    let stdout = "";
    let stderr = "";
    let combined = "";
    let timedOut = false;
    let stopped = false;
    const timer =
      options.timeout === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            killGroup("SIGKILL");
          }, options.timeout);
    const finish = (): void => {
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", abort);
    };
    const take = (chunk: Buffer, toStdout: boolean) => {
      const text = chunk.toString("utf8");
      if (toStdout) stdout += text;
      else stderr += text;
      combined = (combined + text).slice(-64 * 1024);
      log?.write(text);
      options.onOutput?.(text);
      if (!stopped && options.stopWhen?.test(stdout + stderr)) {
        stopped = true;
        killGroup("SIGKILL");
      }
    };
    child.stdout.on("data", (chunk: Buffer) => take(chunk, true));
    child.stderr.on("data", (chunk: Buffer) => take(chunk, false));
    child.on("error", async (error: NodeJS.ErrnoException) => {
      if (settled) return;
      finish();
      await endLog(log, "");
      const missing = error.code === "ENOENT";
      reject(
        new ProcessError(
          missing
            ? `"${program}" was not found.\nFix: install it (\`keel doctor\` names the Debian package).`
            : `"${showCommand(argv)}" could not be started: ${error.message}`,
          argv,
          missing ? 127 : null,
          null,
          "",
          options.log,
        ),
      );
    });
    child.on("close", async (exitCode, signal) => {
      if (settled) return;
      finish();
      await endLog(log, `[exit ${exitCode ?? signal}]\n`);
      if (stopReason !== undefined) {
        reject(new ProcessError(`"${showCommand(argv)}" was stopped because ${stopReason}.`, argv, exitCode, signal, "", options.log));
        return;
      }
      const result: ExecResult = { argv, exitCode, signal, stdout, stderr, timedOut, stopped };
      if (exitCode === 0 || stopped || options.nothrow) {
        resolve(result);
        return;
      }
      const tail = combined.split("\n").slice(-tailLines - 1).join("\n").trimEnd();
      const how = timedOut
        ? `was killed after ${options.timeout} ms`
        : signal
          ? `was killed by signal ${signal}`
          : `returned non-zero exit code ${exitCode}`;
      reject(
        new ProcessError(
          `"${showCommand(argv)}" ${how}.${tail ? `\nIts last lines of output:\n${indent(tail)}` : ""}`,
          argv,
          exitCode,
          signal,
          tail,
          options.log,
        ),
      );
    });
  });
}

/** Ends a log and waits until it is on disk, so that whoever reads it next sees all of it. */
function endLog(log: WriteStream | undefined, last: string): Promise<void> {
  return new Promise((resolve) => (log ? log.end(last, () => resolve()) : resolve()));
}

function indent(text: string): string {
  return text
    .split("\n")
    .map((line) => `  ${line}`)
    .join("\n");
}

/**
 * Runs a program on the user's terminal (a shell) and returns its exit code,
 * 128 + the signal's number if a signal ended it. Ctrl-C belongs to the
 * program meanwhile: keel ignores SIGINT so that it can clean up afterwards.
 */
export function runInteractive(argv: readonly string[], options: { readonly env?: NodeJS.ProcessEnv; readonly cwd?: string } = {}): Promise<number> {
  const [program, ...args] = argv;
  if (program === undefined) throw new Error("runInteractive: empty argv");
  const ignore = (): void => undefined;
  process.on("SIGINT", ignore);
  return new Promise<number>((resolve, reject) => {
    const child = spawn(program, args, { stdio: "inherit", env: options.env, cwd: options.cwd });
    child.on("error", (error) => reject(new ProcessError(`"${showCommand(argv)}" could not be started: ${error.message}`, argv, null, null, "")));
    child.on("close", (code, signal) => resolve(code ?? 128 + (signal ? (os.constants.signals[signal] ?? 0) : 0)));
  }).finally(() => process.removeListener("SIGINT", ignore));
}

/**
 * What runs a command as root of a user namespace in which the user's
 * subordinate ids (/etc/subuid) stand for a system's users, so that files
 * unpacked there keep the owners the system gives them. Nothing as root.
 */
export function systemOwners(...unshareOptions: string[]): string[] {
  return process.getuid?.() === 0 ? [] : ["unshare", "--map-root-user", "--map-auto", ...unshareOptions];
}
