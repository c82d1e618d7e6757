// The one way keel runs a program: an argv (never a shell string), output
// streamed to a log, and a failure turned into a ProcessError that quotes the
// command line, the exit code or signal, and the tail of the output.
import { AsyncLocalStorage } from "node:async_hooks";
import { spawn } from "node:child_process";
import { accessSync, constants, createWriteStream, type WriteStream } from "node:fs";
import os from "node:os";
import path from "node:path";
import { ProcessError } from "../errors.js";
import { groupMembers } from "./processes.js";

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
  /** Text given to the program on its standard input (otherwise it reads nothing). */
  readonly input?: string;
  /** Stops the process (SIGTERM to its process group); a string reason is told in the error. */
  readonly signal?: AbortSignal;
  /** How long a stopped program's process group has to exit before it gets SIGKILL (default 10 s). */
  readonly grace?: number;
  /** Open descriptors the program inherits as its descriptors 3, 4, … */
  readonly fds?: readonly number[];
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
const defaultGrace = 10_000;
const groupPoll = 100;

interface RunningTool {
  readonly argv: readonly string[];
  readonly pid: number;
  readonly done: Promise<unknown>;
}

/**
 * The programs of one build step. Each gets the step's lock descriptors, so
 * that the kernel holds the step's locks while any of them lives, even if keel
 * is killed; keel itself releases them only once the step's programs and
 * everything in their process groups have exited (run()).
 */
export class ToolScope {
  readonly tools = new Set<RunningTool>();
  private readonly stopper = new AbortController();

  constructor(
    /** Names the step in "still waiting for" messages. */
    readonly label: string,
    readonly fds: readonly number[],
  ) {}

  get signal(): AbortSignal {
    return this.stopper.signal;
  }

  /**
   * Runs `body`, in which every exec() belongs to this scope. When it ends
   * (also when it fails while some of its programs still run) the programs
   * left are stopped and waited for.
   */
  async run<T>(body: () => Promise<T>): Promise<T> {
    activeScopes.add(this);
    try {
      return await currentScope.run(this, body);
    } finally {
      this.stopper.abort("its step ended");
      while (this.tools.size > 0) await Promise.allSettled([...this.tools].map((t) => t.done));
      activeScopes.delete(this);
    }
  }
}

const currentScope = new AsyncLocalStorage<ToolScope>();
const activeScopes = new Set<ToolScope>();

/** What keel still waits for: each unfinished step and the live processes of its programs' groups. */
export function stillRunning(): string[] {
  return [...activeScopes].map((scope) => {
    const tools = [...scope.tools].map((tool) => {
      const members = groupMembers(tool.pid);
      const others = members.filter((m) => m.pid !== tool.pid).map((m) => `${m.name} (pid ${m.pid})`);
      return `${shorten(showCommand(tool.argv))} (pid ${tool.pid})${others.length > 0 ? `, and in its process group ${others.slice(0, 5).join(", ")}${others.length > 5 ? ` and ${others.length - 5} more` : ""}` : ""}`;
    });
    return `${scope.label}: ${tools.length > 0 ? tools.join("; ") : "no program of it runs; it is finishing"}`;
  });
}

function shorten(text: string): string {
  return text.length <= 80 ? text : `${text.slice(0, 79)}…`;
}

/** Whether `program` can be run: a path, or a name found on PATH. */
function findable(program: string, env: NodeJS.ProcessEnv, cwd: string | undefined): boolean {
  const candidates = program.includes("/") ? [path.resolve(cwd ?? process.cwd(), program)] : (env.PATH ?? "/usr/bin:/bin").split(":").filter(Boolean).map((dir) => path.join(dir, program));
  return candidates.some((file) => {
    try {
      accessSync(file, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

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
  const scope = currentScope.getStore();
  const signal = scope === undefined ? options.signal : options.signal === undefined ? scope.signal : AbortSignal.any([options.signal, scope.signal]);
  if (!findable(program, options.env ?? process.env, options.cwd)) {
    return Promise.reject(
      new ProcessError(`"${program}" was not found.\nFix: install it (\`keel doctor\` names the Debian package).`, argv, 127, null, "", options.log),
    );
  }
  const log: WriteStream | undefined = options.log ? createWriteStream(options.log, { flags: "a" }) : undefined;
  // A log that cannot be written must not take keel down; the tool's own result decides.
  log?.on("error", () => undefined);
  log?.write(`$ ${showCommand(argv)}\n`);
  const started = performance.now();
  const grace = options.grace ?? defaultGrace;
  let pid: number | undefined;
  const promise = new Promise<ExecResult>((resolve, reject) => {
    // Each program gets its own process group: some (mmdebstrap) signal their
    // whole group when they clean up, which must not reach keel. Stopping a
    // program therefore signals its group, so that its children stop too.
    // setpriv makes the kernel kill the program when keel dies (even by
    // SIGKILL), which nothing in keel could do then.
    const fds = [...(options.fds ?? []), ...(scope?.fds ?? [])];
    const child = spawn("setpriv", ["--pdeathsig", "SIGKILL", "--", program, ...args], {
      cwd: options.cwd,
      env: options.env,
      stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe", ...fds],
      detached: true,
    });
    if (options.input !== undefined) {
      // A program that exits without reading all of it closes the pipe: that is its business, not an error here.
      child.stdin?.on("error", () => undefined);
      child.stdin?.end(options.input);
    }
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
    let killTimer: NodeJS.Timeout | undefined;
    /** SIGTERM to the group now, SIGKILL to whatever of it is left after the grace period. */
    const stopGroup = (): void => {
      if (killTimer !== undefined) return;
      killGroup("SIGTERM");
      killTimer = setTimeout(() => killGroup("SIGKILL"), grace);
    };
    const abort = (): void => {
      const reason: unknown = signal?.reason;
      stopReason = typeof reason === "string" ? reason : "keel was interrupted";
      stopGroup();
    };
    if (signal?.aborted) abort();
    else signal?.addEventListener("abort", abort, { once: true });
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
      signal?.removeEventListener("abort", abort);
    };
    /**
     * Waits until no process of the group is left. A step's program may leave
     * others running (its children, still writing into the step's output):
     * they are stopped, as is a group that was signalled.
     */
    const groupGone = async (): Promise<void> => {
      if (child.pid === undefined) return;
      while (groupMembers(child.pid).length > 0) {
        if (scope !== undefined || stopReason !== undefined) stopGroup();
        await new Promise((done) => setTimeout(done, groupPoll));
      }
      clearTimeout(killTimer);
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
    child.stdout?.on("data", (chunk: Buffer) => take(chunk, true));
    child.stderr?.on("data", (chunk: Buffer) => take(chunk, false));
    // A killed program may have handed its pipes to a process outside its group (an ssh
    // control master holds its sessions' descriptors): once what it wrote is read, stop.
    child.on("exit", () => {
      if (!timedOut && !stopped && stopReason === undefined) return;
      setTimeout(() => [child.stdout, child.stderr].forEach((stream) => stream?.destroy()), 500).unref();
    });
    child.on("error", async (error: NodeJS.ErrnoException) => {
      if (settled) return;
      finish();
      await endLog(log, "");
      reject(new ProcessError(`"${showCommand(argv)}" could not be started: ${error.message}`, argv, null, null, "", options.log));
    });
    child.on("close", async (exitCode, signal) => {
      if (settled) return;
      finish();
      if (scope !== undefined || stopReason !== undefined || timedOut || stopped) await groupGone();
      await endLog(log, `[exit ${exitCode ?? signal} after ${((performance.now() - started) / 1000).toFixed(1)} s]\n`);
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
    pid = child.pid;
  });
  if (scope !== undefined && pid !== undefined) {
    // Done when exec settles: after its whole process group has gone.
    const tool: RunningTool = { argv, pid, done: promise.catch(() => undefined) };
    scope.tools.add(tool);
    void tool.done.then(() => scope.tools.delete(tool));
  }
  return promise;
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
