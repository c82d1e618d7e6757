// keel.override.json: inputs replaced on this machine by a tree of the
// user's (`keel kernel checkout` writes it), next to keel.config.ts and kept
// out of version control. keel.lock is untouched: it still says what the
// project builds everywhere else, and `--reset` returns to it.
import { existsSync, readFileSync } from "node:fs";
import { rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import * as z from "../schema.js";
import { ConfigError } from "../errors.js";

export const overrideFileName = "keel.override.json";

const overrideSchema = z.strictObject({
  /** The tree, relative to keel.config.ts's directory or absolute. */
  path: z.string().check(z.minLength(1)),
  /** What keel.lock pinned when the tree was checked out (for the notice). */
  from: z.optional(z.string()),
});

const fileSchema = z.strictObject({ inputs: z.record(z.string(), overrideSchema) });

export type InputOverride = z.infer<typeof overrideSchema>;

export function overridePath(projectFile: string): string {
  return path.join(path.dirname(projectFile), overrideFileName);
}

/** The overrides of a project; none without the file. */
export function readOverrides(projectFile: string): Readonly<Record<string, InputOverride>> {
  const file = overridePath(projectFile);
  if (!existsSync(file)) return {};
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, "utf8"));
  } catch (error) {
    throw new ConfigError(`\`${file}' is not JSON: ${(error as Error).message}.\nFix: correct it, or delete it to build every input as keel.lock pins it.`);
  }
  const parsed = fileSchema.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `- ${issue.path.map(String).join(".") || "(the file)"}: ${issue.message}`);
    throw new ConfigError(
      `\`${file}' is not a valid ${overrideFileName}:\n${problems.join("\n")}\n` +
        'Fix: write { "inputs": { "<input>": { "path": "<dir>" } } }, or delete it to build every input as keel.lock pins it.',
    );
  }
  return parsed.data.inputs;
}

/** Sets (or with undefined, removes) one input's override; the file goes when it names none. */
export async function writeOverride(projectFile: string, input: string, override: InputOverride | undefined): Promise<void> {
  const file = overridePath(projectFile);
  const inputs = { ...readOverrides(projectFile) };
  if (override === undefined) delete inputs[input];
  else inputs[input] = override;
  if (Object.keys(inputs).length === 0) {
    await rm(file, { force: true });
    return;
  }
  await writeFile(`${file}.tmp`, `${JSON.stringify({ inputs }, null, 2)}\n`);
  await rename(`${file}.tmp`, file);
}
