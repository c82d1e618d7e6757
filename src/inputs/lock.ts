// keel.lock: what each input of a project resolved to, committed next to
// keel.config.ts so that every build of the project reads the same sources.
// A debian-source input is pinned to a version and the .deb's sha256, a
// tarball to its sha256, git to a commit; a path input is used as it is.
// Each system's Debian packages (the root filesystem's complete set, and
// Debian's kernel where used) are pinned to versions and .deb sha256s too;
// the mirror is not part of a pin, so any mirror serving those bytes will do.
import { existsSync, readFileSync } from "node:fs";
import { rename, writeFile } from "node:fs/promises";
import path from "node:path";
import * as z from "../schema.js";
import { ConfigError } from "../errors.js";
import type { InputSpec } from "./spec.js";

const sha256 = z.string().check(z.regex(/^[0-9a-f]{64}$/, "64 lowercase hex digits"));

const lockedSchema = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("debian-source"), package: z.string(), version: z.string(), url: z.string(), sha256 }),
  z.strictObject({ type: z.literal("tarball"), url: z.string(), sha256 }),
  z.strictObject({ type: z.literal("git"), url: z.string(), ref: z.string(), commit: z.string().check(z.regex(/^[0-9a-f]{40}$/, "a 40-digit commit id")) }),
]);

const pinnedDebSchema = z.strictObject({
  version: z.string().check(z.minLength(1)),
  sha256,
  size: z.int().check(z.nonnegative()),
  filename: z.string().check(z.regex(/^pool\/\S+\.deb$/, "a path in the archive like pool/main/…/x.deb")),
});
const debsSchema = z.record(z.string(), pinnedDebSchema);

const debianPinSchema = z.strictObject({
  suite: z.string(),
  components: z.array(z.string()),
  arch: z.string(),
  /** The Date of the suite's Release file when the set was resolved. */
  date: z.string(),
  /** What was asked for (configured and keel's base packages), sorted: a different list makes the pin stale. */
  request: z.array(z.string()),
  /** The complete set mmdebstrap installs, by package name. */
  packages: debsSchema,
  /** Debian's kernel: the package asked for, the image package it leads to, and both pinned. */
  kernel: z.optional(z.strictObject({ package: z.string(), image: z.string(), packages: debsSchema })),
});

const lockSchema = z.strictObject({
  version: z.literal(1),
  inputs: z.record(z.string(), lockedSchema),
  // Files written before systems were pinned have no `systems`.
  systems: z.optional(z.record(z.string(), z.strictObject({ debian: debianPinSchema }))),
});

export type LockedInput = z.infer<typeof lockedSchema>;
export type PinnedDeb = z.infer<typeof pinnedDebSchema>;
export type DebianPin = z.infer<typeof debianPinSchema>;
export type LockFile = z.infer<typeof lockSchema>;

/** What a system asks Debian for; its pin is stale when any of these differ (the mirror does not count). */
export interface DebianRequest {
  readonly suite: string;
  readonly components: readonly string[];
  readonly arch: string;
  /** The configured packages and keel's base packages. */
  readonly packages: readonly string[];
  /** Debian's kernel image package (a metapackage like linux-image-amd64, or a versioned one), when the system uses it. */
  readonly kernelPackage?: string;
}

export function lockPath(projectFile: string): string {
  return path.join(path.dirname(projectFile), "keel.lock");
}

/** The project's keel.lock, or an empty one when there is none yet. */
export function readLock(file: string): LockFile {
  if (!existsSync(file)) return { version: 1, inputs: {} };
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, "utf8"));
  } catch (error) {
    throw new ConfigError(`\`${file}' is not JSON: ${(error as Error).message}.\nFix: restore it from version control, or delete it and run \`keel lock\`.`);
  }
  const parsed = lockSchema.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `- ${issue.path.map(String).join(".") || "(the file)"}: ${issue.message}`);
    throw new ConfigError(`\`${file}' is not a valid keel.lock:\n${problems.join("\n")}\nFix: restore it from version control, or delete it and run \`keel lock\`.`);
  }
  return parsed.data;
}

function sortedByKey<T>(record: Readonly<Record<string, T>>): Record<string, T> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function sortedPin(pin: DebianPin): DebianPin {
  return {
    ...pin,
    packages: sortedByKey(pin.packages),
    ...(pin.kernel ? { kernel: { ...pin.kernel, packages: sortedByKey(pin.kernel.packages) } } : {}),
  };
}

/** keel.lock's text: inputs, systems and packages sorted by name, so that a change reads as a small diff. */
export function lockText(lock: LockFile): string {
  const systems = sortedByKey(lock.systems ?? {});
  const sorted = {
    version: 1,
    inputs: sortedByKey(lock.inputs),
    ...(Object.keys(systems).length > 0 ? { systems: Object.fromEntries(Object.entries(systems).map(([name, s]) => [name, { debian: sortedPin(s.debian) }])) } : {}),
  };
  return `${JSON.stringify(sorted, null, 2)}\n`;
}

/** Writes keel.lock whole or not at all. */
export async function writeLock(file: string, lock: LockFile): Promise<void> {
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, lockText(lock));
  await rename(temporary, file);
}

/** Whether a lock entry still pins what keel.config.ts asks for (a changed spec makes it stale). */
export function lockMatches(spec: InputSpec, locked: LockedInput | undefined): boolean {
  if (locked === undefined) return false;
  switch (spec.type) {
    case "debian-source":
      return locked.type === "debian-source" && locked.package === spec.package && (spec.version === undefined || spec.version === locked.version);
    case "tarball":
      return locked.type === "tarball" && locked.url === spec.url && (spec.sha256 === undefined || spec.sha256 === locked.sha256);
    case "git":
      return locked.type === "git" && locked.url === spec.url && locked.ref === spec.ref;
    case "path":
      return false;
  }
}

/** What an input is pinned to, for messages: a version, a short hash or a commit. */
export function describeLocked(locked: LockedInput): string {
  switch (locked.type) {
    case "debian-source":
      return `${locked.package} ${locked.version} (sha256 ${locked.sha256.slice(0, 12)}…)`;
    case "tarball":
      return `${locked.url} (sha256 ${locked.sha256.slice(0, 12)}…)`;
    case "git":
      return `${locked.url} ${locked.ref} at ${locked.commit.slice(0, 12)}`;
  }
}

/**
 * The pinned entry of an input a build needs: an error naming the input and
 * the command to run when keel.lock lacks it or pins something else.
 */
export function pinned(name: string, spec: InputSpec, lock: LockFile, file: string): LockedInput {
  const locked = lock.inputs[name];
  if (lockMatches(spec, locked)) return locked as LockedInput;
  const why = locked === undefined ? "does not pin it yet" : `pins ${describeLocked(locked)}, which is not what keel.config.ts now asks for`;
  throw new ConfigError(
    `The input \`${name}' is not pinned: \`${file}' ${why}.\n` +
      `Fix: run \`keel lock\` (pins what is missing) or \`keel update ${name}\` (pins it anew), and commit keel.lock.`,
  );
}

/** Package names as keel.lock records a request: sorted and without repeats. */
export function requestedNames(packages: readonly string[]): string[] {
  return [...new Set(packages)].sort();
}

/** Why a system's pin no longer answers its request, or undefined when it does. */
export function debianStaleness(request: DebianRequest, pin: DebianPin | undefined): string | undefined {
  if (pin === undefined) return "does not pin its Debian packages yet";
  const differs = (what: string, was: string, now: string): string => `pins its Debian packages for ${what} ${was}, but keel.config.ts now asks for ${now}`;
  if (pin.suite !== request.suite) return differs("the suite", pin.suite, request.suite);
  if (pin.arch !== request.arch) return differs("the architecture", pin.arch, request.arch);
  if (pin.components.join(" ") !== request.components.join(" ")) return differs("the components", pin.components.join(" "), request.components.join(" "));
  const names = requestedNames(request.packages);
  const added = names.filter((n) => !pin.request.includes(n));
  const removed = pin.request.filter((n) => !names.includes(n));
  if (added.length > 0 || removed.length > 0) {
    const changes = [...added.map((n) => `+${n}`), ...removed.map((n) => `-${n}`)].join(" ");
    return `pins its Debian packages for another package list (now ${changes})`;
  }
  const [was, now] = [pin.kernel?.package, request.kernelPackage];
  if (was === now) return undefined;
  if (was === undefined) return `pins no Debian kernel, but the system now uses ${now ?? ""}`;
  if (now === undefined) return `pins the Debian kernel ${was}, which the system no longer uses`;
  return differs("the kernel", was, now);
}

/**
 * The pinned Debian packages of a system a build needs: an error naming the
 * system and the command to run when keel.lock lacks them or pins another request.
 */
export function pinnedDebian(system: string, request: DebianRequest, lock: LockFile, file: string): DebianPin {
  const pin = lock.systems?.[system]?.debian;
  const why = debianStaleness(request, pin);
  if (why === undefined) return pin as DebianPin;
  throw new ConfigError(`The system \`${system}' is not pinned: \`${file}' ${why}.\nFix: run \`keel lock\` (pins what is missing or stale) or \`keel update ${system}\` (pins it anew), and commit keel.lock.`);
}
