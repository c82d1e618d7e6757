// The .debs keel.lock pins, kept content-addressed in the store
// (`<debs>/<sha256>.deb`, with its control data beside it as
// `<sha256>.control`): downloaded once, checked against the pin, and shared by
// every build and system that pins the same bytes. A build then installs from a
// local repository made of them, so it needs no network once they are there.
import { createHash, randomBytes } from "node:crypto";
import { createWriteStream, existsSync } from "node:fs";
import { copyFile, link, mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { ConfigError } from "../errors.js";
import { exec, shellQuote } from "../host/exec.js";
import type { PinnedDeb } from "../inputs/lock.js";

/** How many .debs are downloaded at once: enough to hide a mirror's latency, few enough to be polite. */
const parallelDownloads = 4;

/** Where a step fetches its pinned .debs from when the store lacks them: never part of a hash. */
export interface DebSource {
  readonly mirror: string;
  /** The Release date of the pin, for the snapshot mirror a missing version is still on. */
  readonly date: string;
}

export function debPath(debsDir: string, sha256: string): string {
  return path.join(debsDir, `${sha256}.deb`);
}

function controlPath(debsDir: string, sha256: string): string {
  return path.join(debsDir, `${sha256}.control`);
}

/** snapshot.debian.org's view of the archive at a Release file's Date, which still serves what was pinned then. */
export function snapshotMirror(date: string): string {
  const stamp = new Date(date).toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
  return `http://snapshot.debian.org/archive/debian/${stamp}`;
}

export interface FetchReport {
  /** Downloaded now. */
  readonly fetched: number;
  /** Already in the store. */
  readonly cached: number;
  readonly bytes: number;
}

interface Wanted extends PinnedDeb {
  readonly name: string;
}

/** Writes `text` to `file` through a temporary name, so a reader never sees half of it. */
async function writeWhole(file: string, text: string): Promise<void> {
  const temporary = `${file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  await writeFile(temporary, text);
  await rename(temporary, file);
}

/** The control data apt needs of a .deb, read once when it enters the store. */
async function saveControl(debsDir: string, deb: Wanted, signal?: AbortSignal): Promise<void> {
  const control = await exec(["dpkg-deb", "--field", debPath(debsDir, deb.sha256)], { signal });
  await writeWhole(controlPath(debsDir, deb.sha256), control.stdout);
}

async function download(debsDir: string, mirror: string, deb: Wanted, date: string | undefined, signal?: AbortSignal): Promise<void> {
  const url = `${mirror.replace(/\/$/, "")}/${deb.filename}`;
  const response = await fetch(url, { signal }).catch((error: unknown) => {
    if (signal?.aborted) throw error;
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    throw new ConfigError(
      `The Debian mirror ${mirror} cannot be reached (${cause?.code ?? cause?.message ?? (error as Error).message}) to download ${deb.name} ${deb.version}, which the store does not have yet.\n` +
        "Fix: check that this machine reaches the mirror, or set distro.mirror to one it reaches.",
    );
  });
  if (response.status === 404 || response.status === 410) {
    const snapshot = date === undefined ? "a snapshot.debian.org mirror" : snapshotMirror(date);
    throw new ConfigError(
      `The Debian mirror ${mirror} no longer has ${deb.name} ${deb.version} (HTTP ${response.status} for ${deb.filename}), which keel.lock pins.\n` +
        `Fix: run \`keel update ${deb.name}\` to pin the mirror's current version, or set distro.mirror to ${snapshot}, which still serves the pinned one.`,
    );
  }
  if (!response.ok || response.body === null) {
    throw new ConfigError(`The Debian mirror ${mirror} answered HTTP ${response.status} ${response.statusText} for ${url}.\nFix: check distro.mirror, or try again later.`);
  }
  const hash = createHash("sha256");
  const hasher = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      done(null, chunk);
    },
  });
  const target = debPath(debsDir, deb.sha256);
  const temporary = `${target}.${process.pid}.${randomBytes(4).toString("hex")}.part`;
  try {
    await pipeline(Readable.fromWeb(response.body as import("node:stream/web").ReadableStream), hasher, createWriteStream(temporary, { mode: 0o644 }), { signal });
    const actual = hash.digest("hex");
    if (actual !== deb.sha256) {
      throw new ConfigError(
        `The package ${deb.name} ${deb.version} from ${url} has sha256 ${actual}, but keel.lock pins ${deb.sha256}.\n` +
          `Fix: if the mirror now serves other bytes under that version, \`keel update ${deb.name}\` pins them; otherwise the download was corrupted or altered on the way — build again, or use another distro.mirror.`,
      );
    }
    await rename(temporary, target);
  } finally {
    await rm(temporary, { force: true });
  }
}

/**
 * Makes sure the store has every .deb of `packages` (keel.lock's pins, by
 * name): present ones are trusted (they were checked when they came in),
 * missing ones are downloaded from `mirror`, a few at once. `date` (the pin's
 * Release date) names the snapshot mirror to suggest when a version is gone.
 */
export async function fetchDebs(
  debsDir: string,
  mirror: string,
  packages: Readonly<Record<string, PinnedDeb>>,
  signal?: AbortSignal,
  date?: string,
): Promise<FetchReport> {
  await mkdir(debsDir, { recursive: true });
  const all = Object.entries(packages).map(([name, pin]) => ({ name, ...pin }));
  const missing = new Set(all.filter((deb) => !existsSync(debPath(debsDir, deb.sha256))));
  // A .deb without its control data is one whose extraction was interrupted: it gets it now.
  const queue = all.filter((deb) => missing.has(deb) || !existsSync(controlPath(debsDir, deb.sha256)));
  let bytes = 0;
  const worker = async (): Promise<void> => {
    for (let deb = queue.shift(); deb !== undefined; deb = queue.shift()) {
      if (missing.has(deb)) {
        await download(debsDir, mirror, deb, date, signal);
        bytes += deb.size;
      }
      await saveControl(debsDir, deb, signal);
    }
  };
  // One failure stops the others from taking more work; the first error is the one reported.
  const workers = Array.from({ length: Math.min(parallelDownloads, queue.length) }, () =>
    worker().catch((error: unknown) => {
      queue.length = 0;
      throw error;
    }),
  );
  const failed = (await Promise.allSettled(workers)).find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed !== undefined) throw failed.reason;
  return { fetched: missing.size, cached: all.length - missing.size, bytes };
}

/** A Packages stanza: the .deb's own control data, and where and what the file is. */
export function packagesStanza(control: string, file: string, deb: PinnedDeb): string {
  const fields = control.trimEnd().split("\n").filter((line) => !/^(Filename|Size|SHA256|MD5sum):/.test(line));
  return [...fields, `Filename: ${file}`, `Size: ${deb.size}`, `SHA256: ${deb.sha256}`].join("\n");
}

/** A Release file naming the suite, so that mmdebstrap's `?archive(^suite$)` selections find the packages. */
export function releaseFile(suite: string, arch: string, date: string, packages: string): string {
  const hash = createHash("sha256").update(packages).digest("hex");
  return [`Suite: ${suite}`, `Codename: ${suite}`, `Date: ${date}`, `Architectures: ${arch}`, "SHA256:", ` ${hash} ${Buffer.byteLength(packages)} Packages`, ""].join("\n");
}

export interface RepositoryOptions {
  readonly suite: string;
  readonly arch: string;
  readonly date: string;
}

/**
 * A flat apt repository in `dir` holding exactly `packages` (hard links to the
 * store's .debs, copies where the store is on another file system), with
 * Packages and Release files; apt given only it can install nothing else.
 */
export async function localRepository(dir: string, debsDir: string, packages: Readonly<Record<string, PinnedDeb>>, options: RepositoryOptions): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const stanzas: string[] = [];
  for (const [name, deb] of Object.entries(packages).sort(([a], [b]) => (a < b ? -1 : 1))) {
    const file = path.basename(deb.filename);
    const source = debPath(debsDir, deb.sha256);
    const target = path.join(dir, file);
    await rm(target, { force: true });
    await link(source, target).catch(async (error: NodeJS.ErrnoException) => {
      if (error.code !== "EXDEV" && error.code !== "EPERM") throw error;
      await copyFile(source, target);
    });
    const size = (await stat(target)).size;
    if (size !== deb.size) throw new Error(`${source} has ${size} bytes where keel.lock pins ${deb.size} for ${name}`);
    stanzas.push(packagesStanza(await readFile(controlPath(debsDir, deb.sha256), "utf8"), `./${file}`, deb));
  }
  const text = `${stanzas.join("\n\n")}\n`;
  await writeFile(path.join(dir, "Packages"), text);
  await writeFile(path.join(dir, "Release"), releaseFile(options.suite, options.arch, options.date, text));
}

/**
 * What mmdebstrap's --include should name: every pinned package. The .debs'
 * own Priority fields differ from the archive's overrides for some packages
 * (apt is `important` in its control data, `required` in the archive), so
 * mmdebstrap's priority-based selection alone would install a slightly
 * different set from the local repository than from the mirror; naming the
 * whole pinned set installs exactly it.
 */
export function pinnedIncludes(packages: Readonly<Record<string, PinnedDeb>>): string[] {
  return Object.keys(packages).sort();
}

/** Where the repository is put inside mmdebstrap's chroot while it builds. */
const repositoryInChroot = "/var/lib/keel-repository";

/**
 * mmdebstrap's options to install from the local repository `repo` only, for
 * a call whose MIRROR argument is the sources line the finished system keeps.
 * The repository is copied into the chroot by mmdebstrap itself (`sync-in`
 * reads it as the invoking user, so a private store works in unshare mode,
 * where the namespace's root cannot read the user's files); apt is pointed at
 * that copy before its update and the system's own sources line is put back
 * (and the copy removed) before the tarball is written.
 */
export function localRepositoryOptions(repo: string): string[] {
  const inChroot = `"$1"${repositoryInChroot}`;
  return [
    `--setup-hook=mkdir -p ${inChroot}`,
    `--setup-hook=sync-in ${shellQuote(repo)} ${repositoryInChroot}`,
    `--setup-hook=mv "$1/etc/apt/sources.list" ${inChroot}.sources && echo "deb [trusted=yes] copy://$1${repositoryInChroot} ./" > "$1/etc/apt/sources.list"`,
    `--customize-hook=mv ${inChroot}.sources "$1/etc/apt/sources.list" && rm -rf ${inChroot}`,
  ];
}
