import { describeMoves, relockSystems, type SystemChange } from "../inputs/debian.js";
import { describeLocked } from "../inputs/lock.js";
import { relock, type LockChange } from "../inputs/resolve.js";
import type { Output } from "./command.js";
import { defineCommand } from "./command.js";

function inputLines(changes: readonly LockChange[]): string[] {
  return changes.map(({ name, before, after }) => {
    const was = before === undefined ? "" : describeLocked(before) === describeLocked(after) ? " (unchanged)" : ` (was ${describeLocked(before)})`;
    return `${name}: ${describeLocked(after)}${was}`;
  });
}

function report(out: Output, lines: readonly string[], nothing: string): void {
  if (lines.length === 0) out.stderr(`${nothing}\n`);
  for (const line of lines) out.stdout(`${line}\n`);
}

const systemLines = (changes: readonly SystemChange[]): string[] => changes.flatMap((c) => describeMoves(c.system, c.before, c.after));

export const lockCommand = defineCommand({
  name: "lock",
  summary: "pin the project's inputs and systems that keel.lock does not pin yet",
  description:
    "Resolves each input of keel.config.ts that keel.lock lacks, or pins differently from what keel.config.ts\n" +
    "now asks: a debian-source package to the version apt would download (with the .deb's sha256), a tarball\n" +
    "to its sha256, a git ref to its commit. Pinned inputs are left alone; path inputs are never pinned.\n" +
    "Each system's Debian packages (its `packages`, keel's base packages, Debian's kernel where used, and all\n" +
    "they depend on) are pinned to versions and .deb sha256s the same way when keel.lock lacks them or its\n" +
    "package list, suite, components or kernel package changed. The mirror is not part of a pin.\n" +
    "Commit keel.lock: every build of the project then reads the same sources and installs the same packages.",
  positionals: [],
  options: {},
  examples: [["keel lock", "Pin what is missing after adding an input, a system or a package."]],
  async run(context) {
    const project = await context.project();
    const inputs = await relock(project, "missing");
    const systems = await relockSystems(project, "missing", (line) => context.out.stderr(`${line}\n`));
    report(context.out, [...inputLines(inputs), ...systemLines(systems)], "keel.lock already pins every input and system.");
    return 0;
  },
});

export const updateCommand = defineCommand({
  name: "update",
  summary: "pin anew: inputs, systems' Debian packages, or the systems holding a package",
  description:
    "Resolves again, ignoring what keel.lock pins, and writes keel.lock: without an argument every input and\n" +
    "system; else the input, the system, or every system that installs the Debian package so named. Prints\n" +
    "each package that moved (old → new version), was added or removed, or \"nothing moved\".\n" +
    "Switching kernel versions is one line in keel.config.ts (e.g. the package linux-source-6.1 → 6.12)\n" +
    "followed by `keel update linux`.",
  positionals: [{ name: "name", required: false, description: "An input, a system, or a Debian package (default: everything)." }],
  options: {},
  examples: [
    ["keel update", "Re-resolve every input and every system's packages."],
    ["keel update linux", "Take the newest linux-source package apt knows, or the branch's newest commit."],
    ["keel update qemu", "Pin the system qemu's packages to the suite's current versions."],
    ["keel update openssh-server", "Re-resolve the systems that install openssh-server."],
  ],
  async run(context, { positionals }) {
    const project = await context.project();
    const [name] = positionals;
    const progress = (line: string): void => context.out.stderr(`${line}\n`);
    let lines: string[];
    if (name === undefined) {
      const inputs = await relock(project, Object.keys(project.inputs));
      lines = [...inputLines(inputs), ...systemLines(await relockSystems(project, "all", progress))];
    } else if (name in project.inputs) {
      lines = inputLines(await relock(project, [name]));
    } else {
      lines = systemLines(await relockSystems(project, project.systems.has(name) ? { systems: [name] } : { package: name }, progress));
    }
    report(context.out, lines, "nothing moved");
    return 0;
  },
});
