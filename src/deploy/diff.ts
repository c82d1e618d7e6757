// What deploying a system would change on its machine, against the
// generation the machine runs: Debian packages (from both trees' dpkg
// status), the kernel's release and config, the files under /etc (a unified
// diff), systemd units, and the files and bytes a copy sends. It reads both
// trees and changes nothing. Files that differ only in their times (a rootfs
// build stamps what it writes) are counted apart, not shown as changes.
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { exec, shellQuote } from "../host/exec.js";
import type { ItemizedChange, Remote } from "../host/ssh.js";

export interface Package {
  readonly name: string;
  readonly version: string;
}

export interface PackageChanges {
  readonly added: readonly Package[];
  readonly removed: readonly Package[];
  readonly upgraded: readonly { readonly name: string; readonly from: string; readonly to: string }[];
}

/** The installed packages in a dpkg status file, by name (name:arch for a foreign architecture's). */
export function installedPackages(status: string): Map<string, string> {
  const installed = new Map<string, string>();
  for (const stanza of status.split(/\n\s*\n/)) {
    const field = (name: string) => new RegExp(`^${name}: *(.*)$`, "m").exec(stanza)?.[1]?.trim();
    const name = field("Package");
    const version = field("Version");
    if (name === undefined || version === undefined || !/\binstalled$/.test(field("Status") ?? "")) continue;
    const arch = field("Architecture");
    installed.set(arch === undefined || arch === "all" || arch === "amd64" ? name : `${name}:${arch}`, version);
  }
  return installed;
}

/** What changes from the packages of `from` to those of `to`, each list sorted by name. */
export function packageChanges(from: ReadonlyMap<string, string>, to: ReadonlyMap<string, string>): PackageChanges {
  const names = [...new Set([...from.keys(), ...to.keys()])].sort();
  return {
    added: names.filter((n) => !from.has(n)).map((name) => ({ name, version: to.get(name) as string })),
    removed: names.filter((n) => !to.has(n)).map((name) => ({ name, version: from.get(name) as string })),
    upgraded: names.filter((n) => from.has(n) && to.has(n) && from.get(n) !== to.get(n)).map((name) => ({ name, from: from.get(name) as string, to: to.get(name) as string })),
  };
}

/** A kernel .config's options and their values; `# CONFIG_X is not set` is n. */
export function kernelOptions(config: string): Map<string, string> {
  const options = new Map<string, string>();
  for (const line of config.split("\n")) {
    const set = /^CONFIG_(\w+)=(.*)$/.exec(line);
    const unset = /^# CONFIG_(\w+) is not set$/.exec(line);
    if (set) options.set(set[1] as string, set[2] as string);
    else if (unset) options.set(unset[1] as string, "n");
  }
  return options;
}

export interface OptionChange {
  readonly option: string;
  /** null: the config did not name it. */
  readonly from: string | null;
  readonly to: string | null;
}

/** The options whose value differs between two kernel configs, sorted by name. */
export function kernelConfigChanges(from: ReadonlyMap<string, string>, to: ReadonlyMap<string, string>): OptionChange[] {
  const names = [...new Set([...from.keys(), ...to.keys()])].sort();
  return names.filter((n) => (from.get(n) ?? "n") !== (to.get(n) ?? "n")).map((option) => ({ option, from: from.get(option) ?? null, to: to.get(option) ?? null }));
}

export interface FileChanges {
  /** Paths whose content differs (or whose size does: a quick check cannot say more), symlinks pointing elsewhere. */
  readonly changed: readonly string[];
  readonly added: readonly string[];
  readonly removed: readonly string[];
  /** Regular files that rsync would update for their size or time: the candidates whose content keel compares. */
  readonly updated: readonly string[];
}

/** rsync's itemized dry run, sorted into added, removed and updated paths; directories and attribute-only changes are left out. */
export function fileChanges(changes: readonly ItemizedChange[]): FileChanges {
  const added: string[] = [];
  const removed: string[] = [];
  const changed: string[] = [];
  const updated: string[] = [];
  for (const { flags, path: file } of changes) {
    if (file.endsWith("/")) continue;
    if (flags === "*deleting") removed.push(file);
    else if (flags[1] === "d" || flags[0] === "." || flags[0] === "h") continue;
    else if (flags.slice(2) === "+".repeat(9)) added.push(file);
    else if (flags[1] === "f") updated.push(file);
    else if (flags[2] === "c") changed.push(file);
  }
  return { changed, added, removed, updated };
}

/** Where systemd units live in a tree, and the unit's name (a symlink in a .wants directory names its enablement). */
export function unitName(file: string): string | undefined {
  return /^(?:etc|usr\/lib|lib)\/systemd\/system\/(.+)$/.exec(file)?.[1];
}

export interface SystemDiff {
  /** The generation compared against: the one the machine runs. */
  readonly against: number;
  readonly packages: PackageChanges;
  readonly kernel: { readonly from: string | null; readonly to: string; readonly config: readonly OptionChange[] | null };
  /** Unified diffs of /etc's changed, added and removed files (or why one is not shown), in path order. */
  readonly etc: readonly { readonly file: string; readonly change: "changed" | "added" | "removed"; readonly diff: string }[];
  readonly units: { readonly added: readonly string[]; readonly removed: readonly string[]; readonly changed: readonly string[] };
  readonly files: { readonly changed: number; readonly added: number; readonly removed: number; readonly timesOnly: number };
  /** What a copy against that generation sends, before rsync's deltas and compression; the system's size. */
  readonly bytes: number;
  readonly size: number;
}

/** The local tree of the new generation: where it is, the command that reads it with its owners, its size. */
export interface LocalTree {
  readonly dir: string;
  readonly within: readonly string[];
  readonly size: number;
  readonly release: string;
  readonly kernelConfig: string;
}

/** /etc files larger than this are said to differ, not shown. */
const maxShownBytes = 64 * 1024;
/** At most this many /etc files are shown as diffs. */
const maxShownFiles = 40;

const q = shellQuote;

/** sha256 of each file under `dir`, by path, read by `argv`'s runner (ssh there, or a user namespace here). */
async function checksums(run: (argv: string[]) => Promise<string>, dir: string, files: readonly string[]): Promise<Map<string, string>> {
  const sums = new Map<string, string>();
  for (let i = 0; i < files.length; i += 500) {
    const out = await run(["sh", "-c", `cd ${q(dir)} && sha256sum -- "$@"`, "sh", ...files.slice(i, i + 500)]);
    for (const line of out.split("\n")) {
      const match = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
      if (match) sums.set(match[2] as string, match[1] as string);
    }
  }
  return sums;
}

/** Compares the new generation's tree with the generation `against` on the machine. */
export async function systemDiff(remote: Remote, against: number, tree: LocalTree, fromRelease: string | null): Promise<SystemDiff> {
  const there = `/keel/generations/${against}`;
  const here = (argv: string[]) => exec([...tree.within, ...argv], { nothrow: true }).then((r) => r.stdout);
  const onMachine = (argv: string[]) => remote.exec(argv, { nothrow: true, timeout: 300_000 }).then((r) => r.stdout);
  const dry = await remote.copyTo([`${tree.dir}/`], `${there}/`, { delete: true, flags: ["--dry-run", "--itemize-changes", "--hard-links", "--numeric-ids"], within: tree.within });
  const sorted = fileChanges(dry.changes);
  const [hereSums, thereSums] = await Promise.all([checksums(here, tree.dir, sorted.updated), checksums(onMachine, there, sorted.updated)]);
  const contentChanged = sorted.updated.filter((f) => hereSums.get(f) === undefined || hereSums.get(f) !== thereSums.get(f));
  const changed = [...sorted.changed, ...contentChanged].sort();
  const [hereStatus, thereStatus] = await Promise.all([here(["cat", `${tree.dir}/var/lib/dpkg/status`]), onMachine(["cat", `${there}/var/lib/dpkg/status`])]);
  const release = fromRelease ?? ((await onMachine(["ls", `${there}/usr/lib/modules`])).split("\n")[0] || null);
  const thereConfig = release === null ? "" : await onMachine(["cat", `${there}/usr/lib/modules/${release}/config`]);
  const hereConfig = await readFile(tree.kernelConfig, "utf8");
  const units = (files: readonly string[]) => files.flatMap((f) => unitName(f) ?? []);
  return {
    against,
    packages: packageChanges(installedPackages(thereStatus), installedPackages(hereStatus)),
    kernel: { from: release, to: tree.release, config: thereConfig === "" ? null : kernelConfigChanges(kernelOptions(thereConfig), kernelOptions(hereConfig)) },
    etc: await etcDiffs(remote, there, tree, { changed: changed.filter(inEtc), added: sorted.added.filter(inEtc), removed: sorted.removed.filter(inEtc) }),
    units: { added: units(sorted.added), removed: units(sorted.removed), changed: units(changed) },
    files: { changed: changed.length, added: sorted.added.length, removed: sorted.removed.length, timesOnly: sorted.updated.length - contentChanged.length },
    bytes: dry.bytes,
    size: tree.size,
  };
}

const inEtc = (file: string) => file.startsWith("etc/");

/** Unified diffs of /etc's files: the machine's copies are fetched into a temporary directory, then `diff -u` against the tree's. */
async function etcDiffs(remote: Remote, there: string, tree: LocalTree, files: { readonly changed: readonly string[]; readonly added: readonly string[]; readonly removed: readonly string[] }): Promise<SystemDiff["etc"]> {
  const all = [
    ...files.changed.map((file) => ({ file, change: "changed" as const })),
    ...files.added.map((file) => ({ file, change: "added" as const })),
    ...files.removed.map((file) => ({ file, change: "removed" as const })),
  ].sort((a, b) => a.file.localeCompare(b.file));
  const shown = all.slice(0, maxShownFiles);
  const scratch = await mkdtemp(path.join(tmpdir(), "keel-diff-"));
  try {
    const fetch = shown.filter((f) => f.change !== "added").map((f) => f.file);
    if (fetch.length > 0) {
      const list = path.join(scratch, "files");
      await writeFile(list, `${fetch.join("\n")}\n`);
      await remote.copyFrom([`${there}/`], path.join(scratch, "there"), { flags: [`--files-from=${list}`, "--no-owner", "--no-group"] });
    }
    const modes = new Map(
      (await exec([...tree.within, "sh", "-c", `cd ${q(tree.dir)} && stat -c '%a %s %n' -- "$@"`, "sh", ...shown.filter((f) => f.change !== "removed").map((f) => f.file)], { nothrow: true })).stdout
        .split("\n")
        .flatMap((line) => {
          const match = /^([0-7]+) (\d+) (.+)$/.exec(line);
          return match ? [[match[3] as string, { mode: parseInt(match[1] as string, 8), size: Number(match[2]) }] as const] : [];
        }),
    );
    const diffs: { file: string; change: "changed" | "added" | "removed"; diff: string }[] = [];
    for (const { file, change } of shown) {
      const local = modes.get(file);
      if (local !== undefined && (local.mode & 0o004) === 0) {
        diffs.push({ file, change, diff: `(mode ${local.mode.toString(8).padStart(4, "0")}, not readable by all: its content is not shown)` });
        continue;
      }
      if (local !== undefined && local.size > maxShownBytes) {
        diffs.push({ file, change, diff: `(${local.size} bytes: too large to show)` });
        continue;
      }
      const a = change === "added" ? "/dev/null" : path.join(scratch, "there", file);
      const b = change === "removed" ? "/dev/null" : path.join(tree.dir, file);
      const result = await exec([...tree.within, "diff", "-u", "--label", change === "added" ? "/dev/null" : `a/${file}`, "--label", change === "removed" ? "/dev/null" : `b/${file}`, a, b], { nothrow: true });
      diffs.push({ file, change, diff: result.stdout.trimEnd() || result.stderr.trim() });
    }
    if (all.length > shown.length) diffs.push({ file: "", change: "changed", diff: `(${all.length - shown.length} more files under /etc not shown)` });
    return diffs;
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
