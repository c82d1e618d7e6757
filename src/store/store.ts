// The store: a directory of immutable outputs named `<hash>-<name>`. An output
// is built in tmp/ and renamed into place only when its step succeeded, with
// its metadata written last, so that an output is trusted only when its
// metadata is complete; whatever leaves the store is first renamed into tmp/.
// Builds hold the store's lock shared, `keel gc` exclusively; a lock per
// output makes concurrent builds of one step build it once; each step's log
// stays in `logs/` whether it succeeded or not.
import { randomBytes, createHash } from "node:crypto";
import { existsSync, readFileSync, readlinkSync, realpathSync } from "node:fs";
import { chmod, lstat, mkdir, readdir, rename, rm, symlink, unlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { cacheDir } from "../config/load.js";
import { UsageError } from "../errors.js";
import { ToolScope } from "../host/exec.js";
import { FileLock, type LockOptions } from "./lock.js";

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
  /** Called when another process holds a lock this build needs (a build of the same output, `keel gc`), with its pid. */
  readonly onWait?: (pid: number) => void;
  /** Stops waiting for a lock (the builder has its own signal). */
  readonly signal?: AbortSignal;
}

export const metadataFile = ".keel-step.json";
const entryName = /^[0-9a-f]{32}-/;

/** The store directory: --store, else $KEEL_STORE, else the cache directory's `store`. */
export function storeDir(env: NodeJS.ProcessEnv, explicit: string | undefined, cwd: string): string {
  if (explicit !== undefined) return path.resolve(cwd, explicit);
  if (env.KEEL_STORE) return path.resolve(cwd, env.KEEL_STORE);
  return path.join(cacheDir(env), "store");
}

export class Store {
  /** The store's lock, held shared from the first build until close() (or until keel exits). */
  private storeLock: Promise<FileLock> | undefined;

  constructor(readonly root: string) {}

  pathOf(hash: string, name: string): string {
    return path.join(this.root, `${hash}-${name}`);
  }

  /** Whether the store has the output, complete: its metadata names it and what it refers to is there. */
  has(hash: string, name: string): boolean {
    return trusted(this.pathOf(hash, name)) !== undefined;
  }

  logOf(hash: string, name: string): string {
    return path.join(this.root, "logs", `${hash}-${name}.log`);
  }

  async build(request: BuildRequest): Promise<StepOutput> {
    const { hash, name } = request;
    const options: LockOptions = { ...(request.onWait ? { onWait: request.onWait } : {}), ...(request.signal ? { signal: request.signal } : {}) };
    const storeLock = await this.hold(options);
    const final = this.pathOf(hash, name);
    const cached = trusted(final);
    if (cached !== undefined) return { path: final, built: false, bytes: cached.bytes };
    const lock = await FileLock.take(path.join(this.root, "locks", `${hash}-${name}.lock`), "exclusive", options);
    let workspaceLock: FileLock | undefined;
    try {
      const meanwhile = trusted(final);
      if (meanwhile !== undefined) return { path: final, built: false, bytes: meanwhile.bytes };
      // Left by an older keel or damaged by hand: not trusted, so built again.
      if (await lstat(final).catch(() => undefined)) await this.remove(final);
      const workspace = request.workspace === undefined ? undefined : this.workspaceOf(request.workspace);
      if (workspace !== undefined) {
        workspaceLock = await FileLock.take(path.join(this.root, "locks", `workspace-${path.basename(workspace)}.lock`), "exclusive", options);
        await mkdir(workspace, { recursive: true, mode: 0o700 });
      }
      const temporary = path.join(this.root, "tmp", `${hash}-${name}.${process.pid}.${randomBytes(4).toString("hex")}`);
      try {
        await mkdir(temporary, { mode: 0o700 });
        const log = this.logOf(hash, name);
        await writeFile(log, "", { mode: 0o600 });
        await chmod(log, 0o600);
        const tools = new ToolScope(name, [storeLock.fd, lock.fd, ...(workspaceLock ? [workspaceLock.fd] : [])]);
        const note = await tools.run(() => request.build(temporary, log, workspace));
        await chmod(temporary, 0o700);
        const bytes = await sizeOf(temporary);
        const metadata: Metadata = { name, hash, references: request.references, bytes };
        await writeFile(path.join(temporary, metadataFile), `${JSON.stringify(metadata, null, 2)}\n`, { mode: 0o600 });
        await rename(temporary, final);
        return { path: final, built: true, bytes, ...(note ? { note } : {}) };
      } finally {
        await rm(temporary, { recursive: true, force: true });
      }
    } finally {
      workspaceLock?.release();
      lock.release();
    }
  }

  /** Lets `keel gc` run again: call once what this process built is reachable from its roots. */
  async close(): Promise<void> {
    const held = this.storeLock;
    this.storeLock = undefined;
    (await held)?.release();
  }

  /** A file in some output whose name starts with `name` (`kernel-`), if the store has one. */
  async findFile(name: string, file: string): Promise<string | undefined> {
    const entries = await readdir(this.root).catch(() => [] as string[]);
    const entry = entries.find((n) => entryName.test(n) && n.slice(33).startsWith(name) && existsSync(path.join(this.root, n, file)) && trusted(path.join(this.root, n)));
    return entry === undefined ? undefined : path.join(this.root, entry, file);
  }

  /** A step's persistent directory (see BuildRequest.workspace). */
  workspaceOf(name: string): string {
    return path.join(this.root, "builds", name);
  }

  /** Makes `link` a symlink to `target` and registers it as a GC root. */
  async addRoot(link: string, target: string): Promise<void> {
    const temporary = `${link}.${process.pid}.tmp`;
    await rm(temporary, { force: true });
    await symlink(target, temporary);
    await rename(temporary, link);
    const absolute = path.resolve(link);
    const registration = path.join(this.root, "roots", createHash("sha256").update(absolute).digest("hex").slice(0, 32));
    await mkdir(path.dirname(registration), { recursive: true, mode: 0o700 });
    await rm(registration, { force: true });
    await symlink(absolute, registration);
  }

  /**
   * Deletes what no root reaches, and what interrupted builds and deletions
   * left in tmp/; returns the bytes and entries freed. Waits for running
   * builds (a build's outputs become roots only when it ends), and they wait
   * for it. An entry is deleted before what it refers to, so that an
   * interrupted gc leaves no entry whose references are gone.
   */
  async gc(options: LockOptions = {}): Promise<{ readonly bytes: number; readonly entries: number }> {
    await this.prepare();
    const held = this.storeLock;
    this.storeLock = undefined;
    const lock = (await held) ?? (await FileLock.take(this.storeLockFile(), "exclusive", options));
    try {
      await lock.convert("exclusive", options);
      let bytes = 0;
      // Nothing builds now, and no tool of an earlier build runs (each held the lock): all of tmp/ is left over.
      for (const name of await readdir(path.join(this.root, "tmp"))) {
        const leftover = path.join(this.root, "tmp", name);
        bytes += await sizeOf(leftover);
        await rm(leftover, { recursive: true, force: true });
      }
      // Half-done downloads of pinned .debs (never trusted: they end in .part or .tmp until checked and renamed).
      for (const name of await readdir(path.join(this.root, "debs")).catch(() => [] as string[])) {
        if (!/\.(part|tmp)$/.test(name)) continue;
        bytes += await sizeOf(path.join(this.root, "debs", name));
        await rm(path.join(this.root, "debs", name), { force: true });
      }
      // Lock files of builds that were killed: nobody can hold them now.
      for (const name of await readdir(path.join(this.root, "locks"))) if (name !== path.basename(lock.file)) await rm(path.join(this.root, "locks", name), { force: true });
      const live = new Set<string>();
      const visit = (entry: string): void => {
        if (live.has(entry) || !existsSync(entry)) return;
        live.add(entry);
        for (const reference of readMetadata(entry)?.references ?? []) visit(reference);
      };
      for (const root of await readdir(path.join(this.root, "roots"))) {
        const registration = path.join(this.root, "roots", root);
        const target = resolveRoot(registration, this.root);
        if (target === undefined) await unlink(registration);
        else visit(target);
      }
      const dead = (await readdir(this.root)).filter((name) => entryName.test(name) && !live.has(path.join(this.root, name)));
      let entries = 0;
      for (const name of referrersFirst(this.root, dead)) {
        bytes += await sizeOf(path.join(this.root, name));
        entries++;
        await this.remove(path.join(this.root, name));
        await rm(path.join(this.root, "logs", `${name}.log`), { force: true });
      }
      return { bytes, entries };
    } finally {
      lock.release();
    }
  }

  /** Takes `entry` out of the store at once (a rename into tmp/), then deletes it. */
  private async remove(entry: string): Promise<void> {
    const aside = path.join(this.root, "tmp", `${path.basename(entry)}.removed.${process.pid}.${randomBytes(4).toString("hex")}`);
    await rename(entry, aside);
    await rm(aside, { recursive: true, force: true });
  }

  private storeLockFile(): string {
    return path.join(this.root, "locks", "store.lock");
  }

  /** The store's lock, shared: taken once, by the first of this process's builds (which may run at once). */
  private hold(options: LockOptions): Promise<FileLock> {
    if (this.storeLock === undefined) {
      const taking = this.prepare().then(() => FileLock.take(this.storeLockFile(), "shared", options));
      this.storeLock = taking;
      taking.catch(() => {
        if (this.storeLock === taking) this.storeLock = undefined;
      });
    }
    return this.storeLock;
  }

  /**
   * Makes the store's directories. The store holds root filesystems with
   * password hashes: only its owner may enter it, also when the directory
   * was there before keel.
   */
  private async prepare(): Promise<void> {
    await mkdir(this.root, { recursive: true, mode: 0o700 });
    try {
      await chmod(this.root, 0o700);
    } catch (error) {
      throw new UsageError(
        `The store ${this.root} cannot be made private to you (chmod 0700: ${(error as NodeJS.ErrnoException).code}); it holds password hashes.\n` +
          "Fix: use a store directory you own (--store or KEEL_STORE).",
      );
    }
    await Promise.all(["tmp", "locks", "logs", "roots"].map((d) => mkdir(path.join(this.root, d), { recursive: true, mode: 0o700 })));
  }
}

/** What an output records about itself, in `.keel-step.json`, written last before it is renamed into place. */
interface Metadata {
  readonly name: string;
  readonly hash: string;
  /** Store paths it refers to: `keel gc` keeps them while it lives. */
  readonly references: readonly string[];
  readonly bytes: number;
}

function readMetadata(entry: string): Metadata | undefined {
  try {
    const metadata = JSON.parse(readFileSync(path.join(entry, metadataFile), "utf8")) as Partial<Metadata>;
    const complete =
      `${metadata.hash}-${metadata.name}` === path.basename(entry) &&
      Array.isArray(metadata.references) &&
      metadata.references.every((r) => typeof r === "string") &&
      typeof metadata.bytes === "number";
    return complete ? (metadata as Metadata) : undefined;
  } catch {
    return undefined;
  }
}

/** An entry's metadata if it can be trusted: complete, and what it refers to is in the store. */
function trusted(entry: string): Metadata | undefined {
  const metadata = readMetadata(entry);
  return metadata !== undefined && metadata.references.every((r) => existsSync(r)) ? metadata : undefined;
}

/** `names` ordered so that an entry comes before every entry it refers to. */
function referrersFirst(root: string, names: readonly string[]): string[] {
  const order: string[] = [];
  const seen = new Set<string>();
  const among = new Set(names);
  const visit = (name: string): void => {
    if (seen.has(name)) return;
    seen.add(name);
    for (const reference of readMetadata(path.join(root, name))?.references ?? []) if (among.has(path.basename(reference))) visit(path.basename(reference));
    order.push(name);
  };
  for (const name of names) visit(name);
  return order.reverse();
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

/** The bytes a file or directory tree takes (its files' sizes; a sparse file's allocated bytes). */
async function sizeOf(file: string): Promise<number> {
  const stat = await lstat(file).catch(() => undefined);
  if (stat === undefined) return 0;
  if (!stat.isDirectory()) return stat.isFile() ? Math.min(stat.size, stat.blocks * 512) : stat.size;
  let total = stat.size;
  for (const name of await readdir(file).catch(() => [] as string[])) total += await sizeOf(path.join(file, name));
  return total;
}
