import { describeLocked } from "../inputs/lock.js";
import { relock, type LockChange } from "../inputs/resolve.js";
import type { Output } from "./command.js";
import { defineCommand } from "./command.js";

function report(out: Output, changes: readonly LockChange[], nothing: string): void {
  if (changes.length === 0) out.stderr(`${nothing}\n`);
  for (const { name, before, after } of changes) {
    const was = before === undefined ? "" : describeLocked(before) === describeLocked(after) ? " (unchanged)" : ` (was ${describeLocked(before)})`;
    out.stdout(`${name}: ${describeLocked(after)}${was}\n`);
  }
}

export const lockCommand = defineCommand({
  name: "lock",
  summary: "pin the project's inputs that keel.lock does not pin yet",
  description:
    "Resolves each input of keel.config.ts that keel.lock lacks, or pins differently from what keel.config.ts\n" +
    "now asks: a debian-source package to the version apt would download (with the .deb's sha256), a tarball\n" +
    "to its sha256, a git ref to its commit. Pinned inputs are left alone; path inputs are never pinned.\n" +
    "Commit keel.lock: every build of the project then reads the same sources.",
  positionals: [],
  options: {},
  examples: [["keel lock", "Pin what is missing after adding an input."]],
  async run(context) {
    report(context.out, await relock(await context.project(), "missing"), "keel.lock already pins every input.");
    return 0;
  },
});

export const updateCommand = defineCommand({
  name: "update",
  summary: "pin inputs anew: the newest version, the ref's current commit",
  description:
    "Resolves the named input (or every input) again, ignoring what keel.lock pins, and writes keel.lock.\n" +
    "Switching kernel versions is one line in keel.config.ts (e.g. the package linux-source-6.1 → 6.12)\n" +
    "followed by `keel update linux`.",
  positionals: [{ name: "input", required: false, description: "The input to update (default: all)." }],
  options: {},
  examples: [
    ["keel update", "Re-resolve every input."],
    ["keel update linux", "Take the newest linux-source package apt knows, or the branch's newest commit."],
  ],
  async run(context, { positionals }) {
    const project = await context.project();
    report(context.out, await relock(project, positionals.length > 0 ? positionals : Object.keys(project.inputs)), "The project has no inputs to pin.");
    return 0;
  },
});
