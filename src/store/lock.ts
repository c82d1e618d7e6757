// The store's locks are the kernel's flock(2) locks, taken by util-linux's
// flock(1) on a descriptor keel opened: the lock then belongs to keel's open
// file, and to every tool that inherits it. The kernel releases it when the
// last of them has exited, however keel ends, so a lock is never held by a
// dead process and never needs to be judged stale or taken over.
import { closeSync, constants, fstatSync, ftruncateSync, openSync, readFileSync, realpathSync, statSync, unlinkSync, writeSync } from "node:fs";
import { exec } from "../host/exec.js";
import { processesWithOpen } from "../host/processes.js";

export type LockMode = "shared" | "exclusive";

export interface LockOptions {
  /** Called once when another process holds the lock, with its pid. */
  readonly onWait?: (pid: number) => void;
  /** Stops waiting. */
  readonly signal?: AbortSignal;
}

export class FileLock {
  private constructor(
    readonly file: string,
    /** The locked descriptor; a tool given it keeps the lock held while it runs. */
    readonly fd: number,
    private mode: LockMode,
  ) {}

  /**
   * Waits for the lock on `file` (created if missing). An exclusive holder
   * removes the file when it releases it, so a waiter that then gets the lock
   * on the removed file opens the file again.
   */
  static async take(file: string, mode: LockMode, options: LockOptions = {}): Promise<FileLock> {
    for (;;) {
      const fd = openSync(file, constants.O_RDWR | constants.O_CREAT, 0o600);
      try {
        await lock(fd, file, mode, options);
        if (sameFile(fd, file)) {
          const taken = new FileLock(file, fd, mode);
          taken.sayWho();
          return taken;
        }
      } catch (error) {
        closeSync(fd);
        throw error;
      }
      closeSync(fd);
    }
  }

  /** Turns a shared lock into an exclusive one (or back), waiting for the other holders. */
  async convert(mode: LockMode, options: LockOptions = {}): Promise<void> {
    if (mode === this.mode) return;
    await lock(this.fd, this.file, mode, options);
    this.mode = mode;
    this.sayWho();
  }

  release(): void {
    // Removed while still held: whoever waits on it then sees that the file is gone.
    if (this.mode === "exclusive") unlinkSync(this.file);
    closeSync(this.fd);
  }

  /** An exclusive holder writes its pid into the file, for the "waiting for pid N" of others. */
  private sayWho(): void {
    if (this.mode !== "exclusive") return;
    ftruncateSync(this.fd, 0);
    writeSync(this.fd, `${process.pid}\n`, 0);
  }
}

async function lock(fd: number, file: string, mode: LockMode, options: LockOptions): Promise<void> {
  if (await flock(fd, file, mode, true, options.signal)) return;
  const pid = holderOf(file, fd);
  if (pid !== undefined) options.onWait?.(pid);
  await flock(fd, file, mode, false, options.signal);
}

/** flock(1) on keel's descriptor, passed to it as its descriptor 3. */
async function flock(fd: number, file: string, mode: LockMode, nonblock: boolean, signal: AbortSignal | undefined): Promise<boolean> {
  if (signal?.aborted) throw new Error(`Waiting for the lock ${file} was stopped because ${String(signal.reason)}.`);
  const result = await exec(["flock", `--${mode}`, ...(nonblock ? ["--nonblock"] : []), "3"], { fds: [fd], nothrow: true, ...(signal ? { signal } : {}) }).catch((error: unknown) => {
    if (signal?.aborted) throw new Error(`Waiting for the lock ${file} was stopped because ${String(signal.reason)}.`);
    throw error;
  });
  if (result.exitCode === 0) return true;
  if (nonblock && result.exitCode === 1) return false;
  throw new Error(`"flock --${mode} 3" on ${file} failed with exit code ${result.exitCode}: ${result.stderr.trim()}`);
}

function sameFile(fd: number, file: string): boolean {
  const open = fstatSync(fd);
  const named = statSync(file, { throwIfNoEntry: false });
  return named !== undefined && named.ino === open.ino && named.dev === open.dev;
}

/** Who holds the lock: the pid an exclusive holder wrote, else the oldest other process that has the file open. */
function holderOf(file: string, fd: number): number | undefined {
  try {
    const written = Number(readFileSync(file, "utf8").trim());
    if (Number.isInteger(written) && written > 0 && isAlive(written)) return written;
    return processesWithOpen(realpathSync(file), fd)[0]?.pid;
  } catch {
    // Released and removed meanwhile.
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
