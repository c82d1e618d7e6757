// The store: a directory of immutable outputs named `<hash>-<name>`. An output
// is built in a temporary directory and renamed into place only when its step
// succeeded; a lock per output makes concurrent builds of one step build it
// once; each step's log stays in `logs/` whether it succeeded or not.
import { randomBytes, createHash } from "node:crypto";
import { existsSync, readFileSync, readlinkSync, realpathSync } from "node:fs";
import { link, lstat, mkdir, readdir, readFile, rename, rm, symlink, unlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { cacheDir } from "../config/load.js";

export interface StepOutput {
  /** The store path of the output. */
  readonly path: string;
  /** Whether this call built it (false: it was in the store, or another process built it meanwhile). */
  readonly built: boolean;
  /** Its size, measured once when it was built. */
  readonly bytes: number;
  /** What the builder said about this build (the kernel's ccache hit rate); only when built. */
  readonly note?: string;
}

export interface BuildRequest {
  readonly hash: string;
  readonly name: string;
  /** Store paths this output refers to: kept alive by `keel gc` as long as it is. */
  readonly references: readonly string[];
  /**
   * Fills `out` (a fresh directory), appending what it runs to `log`; may
   * return a note on the build. `workspace` is the persistent directory asked for.
   */
  readonly build: (out: string, log: string, workspace: string | undefined) => Promise<string | void>;
  /**
   * A directory under builds/ that the step keeps between builds (the kernel's
   * Kbuild output): one build uses it at a time, whichever step it builds.
   */
  readonly workspace?: string;
  /** Called when another process holds the lock, with its pid. */
  readonly onWait?: (pid: number) => void;
}

const metadataFile = ".keel-step.json";
const lockPoll = 200;
/** A lock without a pid in it (not written by this keel) is given up after this long. */
const unreadableLockAge = 10_000;

/** The store directory: --store, else $KEEL_STORE, else the cache directory's `store`. */
export function storeDir(env: NodeJS.ProcessEnv, explicit: string | undefined, cwd: string): string {
  if (explicit !== undefined) return path.resolve(cwd, explicit);
  if (env.KEEL_STORE) return path.resolve(cwd, env.KEEL_STORE);
  return path.join(cacheDir(env), "store");
}

/** Temporary directories and locks of builds in progress, removed if keel is stopped. */
const inProgress = new Set<string>();

/** Removes what unfinished builds left, when keel must exit before its tools have stopped. */
export async function abandonBuilds(): Promise<void> {
  await Promise.all([...inProgress].map((p) => rm(p, { recursive: true, force: true })));
  inProgress.clear();
}

export class Store {
  constructor(readonly root: string) {}

  pathOf(hash: string, name: string): string {
    return path.join(this.root, `${hash}-${name}`);
  }

  has(hash: string, name: string): boolean {
    return existsSync(this.pathOf(hash, name));
  }

  logOf(hash: string, name: string): string {
    return path.join(this.root, "logs", `${hash}-${name}.log`);
  }

  async build(request: BuildRequest): Promise<StepOutput> {
    const { hash, name } = request;
    const final = this.pathOf(hash, name);
    if (existsSync(final)) return { path: final, built: false, bytes: readMetadata(final).bytes ?? 0 };
    // The store holds root filesystems with password hashes: only its owner may enter it.
    await mkdir(this.root, { recursive: true, mode: 0o700 });
    await Promise.all(["tmp", "locks", "logs", "roots"].map((d) => mkdir(path.join(this.root, d), { recursive: true })));
    const lock = path.join(this.root, "locks", `${hash}-${name}.lock`);
    const token = await this.acquire(lock, request.onWait);
    let workspaceLock: { lock: string; token: string } | undefined;
    try {
      if (existsSync(final)) return { path: final, built: false, bytes: readMetadata(final).bytes ?? 0 };
      const workspace = request.workspace === undefined ? undefined : this.workspaceOf(request.workspace);
      if (workspace !== undefined) {
        const lock = path.join(this.root, "locks", `workspace-${path.basename(workspace)}.lock`);
        workspaceLock = { lock, token: await this.acquire(lock, request.onWait) };
        await mkdir(workspace, { recursive: true });
      }
      const temporary = path.join(this.root, "tmp", `${hash}-${name}.${process.pid}.${randomBytes(4).toString("hex")}`);
      inProgress.add(temporary);
      let bytes: number;
      let note: string | void;
      try {
        await mkdir(temporary);
        const log = this.logOf(hash, name);
        await writeFile(log, "");
        note = await request.build(temporary, log, workspace);
        bytes = await sizeOf(temporary);
        const metadata: Metadata = { name, hash, references: request.references, bytes };
        await writeFile(path.join(temporary, metadataFile), `${JSON.stringify(metadata, null, 2)}\n`);
        try {
          await rename(temporary, final);
        } catch (error) {
          // Another keel published it meanwhile (a lock taken over from a process thought dead).
          const code = (error as NodeJS.ErrnoException).code;
          if ((code === "ENOTEMPTY" || code === "EEXIST") && existsSync(final)) return { path: final, built: false, bytes: readMetadata(final).bytes ?? 0 };
          throw error;
        }
      } finally {
        await rm(temporary, { recursive: true, force: true });
        inProgress.delete(temporary);
      }
      return { path: final, built: true, bytes, ...(note ? { note } : {}) };
    } finally {
      if (workspaceLock) await release(workspaceLock.lock, workspaceLock.token);
      await release(lock, token);
    }
  }

  /** A file in some output whose name starts with `name` (`kernel-`), if the store has one. */
  async findFile(name: string, file: string): Promise<string | undefined> {
    const entries = await readdir(this.root).catch(() => [] as string[]);
    const entry = entries.find((n) => /^[0-9a-f]{32}-/.test(n) && n.slice(33).startsWith(name) && existsSync(path.join(this.root, n, file)));
    return entry === undefined ? undefined : path.join(this.root, entry, file);
  }

  /** A step's persistent directory (see BuildRequest.workspace). */
  workspaceOf(name: string): string {
    return path.join(this.root, "builds", name);
  }

  /**
   * A lock file holding the builder's pid (and a nonce, so that only its owner
   * removes it); one left by a dead process is taken over. The file appears with
   * its content, by link(2), so that a reader never sees an empty lock.
   */
  private async acquire(lock: string, onWait: ((pid: number) => void) | undefined): Promise<string> {
    const token = `${process.pid} ${randomBytes(8).toString("hex")}\n`;
    const draft = `${lock}.${process.pid}.${randomBytes(4).toString("hex")}`;
    await writeFile(draft, token);
    let told = false;
    try {
      for (;;) {
        try {
          await link(draft, lock);
          inProgress.add(lock);
          return token;
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
        }
        const pid = lockHolder(await readFile(lock, "utf8").catch(() => ""));
        const age = Date.now() - ((await lstat(lock).catch(() => undefined))?.mtimeMs ?? Date.now());
        if (pid !== undefined ? !isAlive(pid) : age > unreadableLockAge) {
          await unlink(lock).catch(() => undefined);
          continue;
        }
        if (pid !== undefined && !told) onWait?.(pid);
        told = pid !== undefined;
        await new Promise((resolve) => setTimeout(resolve, lockPoll));
      }
    } finally {
      await unlink(draft).catch(() => undefined);
    }
  }

  /** The pids of keel processes building into this store now. */
  async activeBuilders(): Promise<number[]> {
    const locks = await readdir(path.join(this.root, "locks")).catch(() => [] as string[]);
    const pids = await Promise.all(locks.map(async (name) => lockHolder(await readFile(path.join(this.root, "locks", name), "utf8").catch(() => ""))));
    return [...new Set(pids.filter((pid): pid is number => pid !== undefined && isAlive(pid)))];
  }

  /** Makes `link` a symlink to `target` and registers it as a GC root. */
  async addRoot(link: string, target: string): Promise<void> {
    const temporary = `${link}.${process.pid}.tmp`;
    await rm(temporary, { force: true });
    await symlink(target, temporary);
    await rename(temporary, link);
    const absolute = path.resolve(link);
    const registration = path.join(this.root, "roots", createHash("sha256").update(absolute).digest("hex").slice(0, 32));
    await mkdir(path.dirname(registration), { recursive: true });
    await rm(registration, { force: true });
    await symlink(absolute, registration);
  }

  /**
   * Deletes what no root reaches; returns the bytes and entries freed. Run it
   * when no build is running: a build's outputs become roots only when it ends.
   */
  async gc(): Promise<{ readonly bytes: number; readonly entries: number }> {
    const live = new Set<string>();
    const visit = (entry: string): void => {
      if (live.has(entry) || !existsSync(entry)) return;
      live.add(entry);
      for (const reference of readReferences(entry)) visit(reference);
    };
    for (const root of await readdir(path.join(this.root, "roots")).catch(() => [] as string[])) {
      const registration = path.join(this.root, "roots", root);
      const target = resolveRoot(registration, this.root);
      if (target === undefined) await unlink(registration);
      else visit(target);
    }
    let bytes = 0;
    let entries = 0;
    for (const name of await readdir(this.root).catch(() => [] as string[])) {
      const entry = path.join(this.root, name);
      if (!/^[0-9a-f]{32}-/.test(name) || live.has(entry)) continue;
      bytes += await sizeOf(entry);
      entries++;
      await rm(entry, { recursive: true, force: true });
      await rm(path.join(this.root, "logs", `${name}.log`), { force: true });
    }
    for (const name of await readdir(path.join(this.root, "tmp")).catch(() => [] as string[])) {
      const pid = Number(/\.(\d+)\.[0-9a-f]+$/.exec(name)?.[1]);
      if (isAlive(pid)) continue;
      const leftover = path.join(this.root, "tmp", name);
      bytes += await sizeOf(leftover);
      await rm(leftover, { recursive: true, force: true });
    }
    return { bytes, entries };
  }
}

/** Removes a lock if it is still ours. */
async function release(lock: string, token: string): Promise<void> {
  if ((await readFile(lock, "utf8").catch(() => "")) === token) await unlink(lock).catch(() => undefined);
  inProgress.delete(lock);
}

/** What an output records about itself, in `.keel-step.json`. */
interface Metadata {
  readonly name?: string;
  readonly hash?: string;
  /** Store paths it refers to: `keel gc` keeps them while it lives. */
  readonly references?: readonly string[];
  readonly bytes?: number;
}

function readMetadata(entry: string): Metadata {
  try {
    return JSON.parse(readFileSync(path.join(entry, metadataFile), "utf8")) as Metadata;
  } catch {
    return {};
  }
}

function readReferences(entry: string): readonly string[] {
  return readMetadata(entry).references ?? [];
}

/** The store entry a root registration reaches, if its link still exists and points into the store. */
function resolveRoot(registration: string, storeRoot: string): string | undefined {
  try {
    const link = readlinkSync(registration);
    const target = realpathSync(link);
    const store = realpathSync(storeRoot);
    return path.dirname(target) === store ? path.join(storeRoot, path.basename(target)) : undefined;
  } catch {
    return undefined;
  }
}

/** The pid in a lock file's content; undefined while it is being written or unreadable. */
function lockHolder(content: string): number | undefined {
  const pid = Number(content.split(" ")[0]);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The bytes a file or directory tree takes (its files' sizes; a sparse file's allocated bytes). */
async function sizeOf(file: string): Promise<number> {
  const stat = await lstat(file).catch(() => undefined);
  if (stat === undefined) return 0;
  if (!stat.isDirectory()) return stat.isFile() ? Math.min(stat.size, stat.blocks * 512) : stat.size;
  let total = stat.size;
  for (const name of await readdir(file).catch(() => [] as string[])) total += await sizeOf(path.join(file, name));
  return total;
}
