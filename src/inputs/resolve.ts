// Resolving an input: what `keel lock` and `keel update` ask the world, and
// fetching a pinned input's bytes with their hash checked.
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { rm } from "node:fs/promises";
import path from "node:path";
import { Readable, Transform, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { ConfigError, UsageError } from "../errors.js";
import { exec } from "../host/exec.js";
import { lockMatches, lockPath, readLock, writeLock, type LockedInput } from "./lock.js";
import type { InputSpec } from "./spec.js";

/** Whether an input's location is a URL rather than a path on this machine. */
export function isUrl(location: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(location);
}

/** A tarball's or tree's location as a path on this machine, relative ones taken from keel.config.ts's directory. */
export function localPath(location: string, projectDir: string): string {
  return path.resolve(projectDir, location.replace(/^file:\/\//, ""));
}

/**
 * Copies a URL or local file to `dest` (when given) and returns the sha256 of
 * its bytes. A failed download leaves nothing at `dest`.
 */
export async function fetchHashing(name: string, location: string, projectDir: string, dest?: string, signal?: AbortSignal): Promise<string> {
  const hash = createHash("sha256");
  const hasher = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      done(null, chunk);
    },
  });
  let source: NodeJS.ReadableStream;
  if (isUrl(location) && !location.startsWith("file://")) {
    const response = await fetch(location, { signal }).catch((error: unknown) => {
      throw new ConfigError(`The input \`${name}' could not be downloaded from ${location}: ${(error as Error).message}.\nFix: check the URL and that this machine reaches it.`);
    });
    if (!response.ok || response.body === null) {
      throw new ConfigError(`The input \`${name}' could not be downloaded from ${location}: HTTP ${response.status} ${response.statusText}.\nFix: check the URL; a pinned version may be gone from the server (then \`keel update ${name}\`).`);
    }
    source = Readable.fromWeb(response.body as import("node:stream/web").ReadableStream);
  } else {
    const file = localPath(location, projectDir);
    source = createReadStream(file);
  }
  try {
    await pipeline(source, hasher, dest === undefined ? new Writable({ write: (_c, _e, done) => done() }) : createWriteStream(dest), { signal });
  } catch (error) {
    if (dest !== undefined) await rm(dest, { force: true });
    if (error instanceof ConfigError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    throw new ConfigError(
      `The input \`${name}' could not be read from ${location}: ${code === "ENOENT" ? "no such file" : (error as Error).message}.\n` +
        "Fix: correct `url` in keel.config.ts (a relative path is taken from keel.config.ts's directory).",
    );
  }
  return hash.digest("hex");
}

/** The error for bytes that are not the pinned ones: names the input and both hashes. */
export function hashMismatch(name: string, location: string, expected: string, actual: string): ConfigError {
  return new ConfigError(
    `The input \`${name}' (${location}) has sha256 ${actual}, but keel.lock pins ${expected}.\n` +
      `Fix: if the new content is expected, run \`keel update ${name}\`; otherwise the source changed under you or the download was corrupted.`,
  );
}

/** What apt would download for `package[=version]`, from the host's apt lists. */
async function resolveDebianSource(name: string, spec: Extract<InputSpec, { type: "debian-source" }>): Promise<LockedInput> {
  const wanted = spec.version === undefined ? spec.package : `${spec.package}=${spec.version}`;
  const result = await exec(["apt-get", "download", "--print-uris", "-q", wanted], { nothrow: true });
  const line = /^'([^']+)' (\S+) \d+ SHA256:([0-9a-f]{64})/m.exec(result.stdout);
  if (result.exitCode !== 0 || line === null) {
    const why = result.stderr.trim().split("\n").find((l) => l.startsWith("E:")) ?? result.stderr.trim();
    throw new ConfigError(
      `The input \`${name}' (${wanted}) cannot be resolved by apt: ${why || "apt printed no download for it"}.\n` +
        "Fix: check the package name and version (`apt-cache policy " + spec.package + "`); `apt-get update` refreshes the host's package lists.",
    );
  }
  const [, url = "", file = "", sha256 = ""] = line;
  const version = decodeURIComponent(file.split("_")[1] ?? "");
  return { type: "debian-source", package: spec.package, version, url, sha256 };
}

async function resolveGit(name: string, spec: Extract<InputSpec, { type: "git" }>): Promise<LockedInput> {
  if (/^[0-9a-f]{40}$/.test(spec.ref)) return { type: "git", url: spec.url, ref: spec.ref, commit: spec.ref };
  const result = await exec(["git", "ls-remote", spec.url, spec.ref, `${spec.ref}^{}`], { nothrow: true, env: { ...process.env, GIT_TERMINAL_PROMPT: "0" } });
  const refs = result.stdout.trim().split("\n").filter(Boolean).map((l) => l.split("\t") as [string, string]);
  // An annotated tag's commit is the peeled entry (`^{}`); a branch or light tag has only one.
  const found = refs.find(([, ref]) => ref.endsWith("^{}")) ?? refs[0];
  if (result.exitCode !== 0 || found === undefined) {
    throw new ConfigError(
      `The input \`${name}' (git ${spec.url}, ref ${spec.ref}) cannot be resolved: ${result.exitCode !== 0 ? result.stderr.trim() : "no such branch or tag"}.\n` +
        "Fix: check `url` and `ref` in keel.config.ts (`git ls-remote <url>` lists the refs).",
    );
  }
  return { type: "git", url: spec.url, ref: spec.ref, commit: found[0] };
}

/** What an input resolves to now; undefined for a path input, which is never pinned. */
export async function resolveInput(name: string, spec: InputSpec, projectDir: string): Promise<LockedInput | undefined> {
  switch (spec.type) {
    case "debian-source":
      return resolveDebianSource(name, spec);
    case "tarball":
      return { type: "tarball", url: spec.url, sha256: spec.sha256 ?? (await fetchHashing(name, spec.url, projectDir)) };
    case "git":
      return resolveGit(name, spec);
    case "path":
      return undefined;
  }
}

export interface LockChange {
  readonly name: string;
  readonly before: LockedInput | undefined;
  readonly after: LockedInput;
}

/**
 * Resolves the inputs named (or, without names, those keel.lock does not pin
 * as keel.config.ts asks) and writes keel.lock once all resolved. Path inputs
 * are never pinned. Returns what changed.
 */
export async function relock(project: { file: string; inputs: Readonly<Record<string, InputSpec>> }, names: readonly string[] | "missing"): Promise<LockChange[]> {
  const file = lockPath(project.file);
  const lock = readLock(file);
  const wanted = names === "missing" ? Object.keys(project.inputs).filter((n) => !lockMatches(project.inputs[n] as InputSpec, lock.inputs[n])) : names;
  for (const name of wanted) {
    if (!(name in project.inputs)) {
      throw new UsageError(
        `The project has no input \`${name}'. Its inputs: ${Object.keys(project.inputs).join(", ") || "(none)"}.\nFix: name one of those (see \`inputs\` in ${project.file}).`,
      );
    }
  }
  const changes: LockChange[] = [];
  for (const name of wanted) {
    const after = await resolveInput(name, project.inputs[name] as InputSpec, path.dirname(project.file));
    if (after === undefined) continue;
    changes.push({ name, before: lock.inputs[name], after });
  }
  // Entries for inputs the project no longer has go too.
  const inputs = Object.fromEntries(Object.entries(lock.inputs).filter(([name]) => name in project.inputs));
  for (const change of changes) inputs[change.name] = change.after;
  const stale = Object.keys(lock.inputs).length !== Object.keys(inputs).length;
  if (changes.length > 0 || stale) await writeLock(file, { ...lock, inputs });
  return changes;
}
