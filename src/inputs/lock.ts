// keel.lock: what each input of a project resolved to, committed next to
// keel.config.ts so that every build of the project reads the same sources.
// A debian-source input is pinned to a version and the .deb's sha256, a
// tarball to its sha256, git to a commit; a path input is used as it is.
import { existsSync, readFileSync } from "node:fs";
import { rename, writeFile } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import { ConfigError } from "../errors.js";
import type { InputSpec } from "./spec.js";

const sha256 = z.string().regex(/^[0-9a-f]{64}$/, "64 lowercase hex digits");

const lockedSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("debian-source"), package: z.string(), version: z.string(), url: z.string(), sha256 }).strict(),
  z.object({ type: z.literal("tarball"), url: z.string(), sha256 }).strict(),
  z.object({ type: z.literal("git"), url: z.string(), ref: z.string(), commit: z.string().regex(/^[0-9a-f]{40}$/, "a 40-digit commit id") }).strict(),
]);

const lockSchema = z.object({ version: z.literal(1), inputs: z.record(z.string(), lockedSchema) }).strict();

export type LockedInput = z.infer<typeof lockedSchema>;
export type LockFile = z.infer<typeof lockSchema>;

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

/** Writes keel.lock whole or not at all, inputs sorted by name. */
export async function writeLock(file: string, lock: LockFile): Promise<void> {
  const inputs = Object.fromEntries(Object.entries(lock.inputs).sort(([a], [b]) => a.localeCompare(b)));
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, `${JSON.stringify({ version: 1, inputs }, null, 2)}\n`);
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
