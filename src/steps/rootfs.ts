// The root filesystem step: mmdebstrap installs exactly the packages keel.lock
// pins, from a local repository of the store's .debs (fetched once, so a
// rebuild needs no mirror); keel's files — environment.etc, where the option
// modules put fstab, hostname, units, sshd_config.d and the rest — are synced
// in from an overlay, and a setup script run in the chroot creates users and
// groups, sets the time zone and enables units. SSH host keys are removed:
// each machine makes its own on first boot. The kernel is not in it: its
// modules join the root file system where a machine boots it (the image), so
// a kernel change never rebuilds this step. Output: rootfs.tar.
import { chmod, copyFile, mkdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import type { ResolvedSystem } from "../config/project.js";
import { shellQuote } from "../host/exec.js";
import type { PinnedDeb } from "../inputs/lock.js";
import type { UnitActions } from "../options/systemd.js";
import { run, type BuildContext } from "./context.js";
import { fetchDebs, localRepository, localRepositoryOptions, pinnedIncludes, type DebSource } from "./debs.js";
import { defineStep } from "./step.js";

/**
 * What every keel system needs besides the configured packages:
 * systemd-boot-efi is the boot loader a disk of the system gets; rsync
 * receives the next generation `keel deploy` sends.
 */
export const basePackages = ["systemd-sysv", "udev", "kmod", "iproute2", "systemd-resolved", "systemd-boot-efi", "rsync"];

/** An environment.etc entry as a step reads it: a copied file by its content's hash too. */
export type EtcFile = ResolvedSystem["environment"]["etc"][string] & { readonly sourceHash: string | null };

type User = ResolvedSystem["users"]["users"][string];

/** What the setup script reads: accounts (without their keys, which are files), units to enable, the time zone. */
export interface SetupSlice {
  readonly users: Readonly<Record<string, Omit<User, "openssh">>>;
  readonly groups: ResolvedSystem["users"]["groups"];
  readonly units: UnitActions;
  readonly timeZone: string | null;
}

export interface RootfsSlice {
  readonly distro: {
    readonly suite: string;
    readonly components: readonly string[];
    readonly arch: string;
    /** The mirror the system's own apt sources name: distro.mirror, else Debian's. */
    readonly sources: string;
  };
  /** Every package mmdebstrap installs, as keel.lock pins it. */
  readonly debs: Readonly<Record<string, PinnedDeb>>;
  /** environment.etc, by path relative to /etc. */
  readonly etc: Readonly<Record<string, EtcFile>>;
  readonly setup: SetupSlice;
}

/** A file of the overlay: its text, or a host file to copy, and its mode. */
export type OverlayFile = { readonly text: string; readonly mode: number } | { readonly source: string; readonly mode: number };

/** environment.etc as files of an overlay, by absolute path. */
export function etcFiles(etc: Readonly<Record<string, EtcFile>>): Record<string, OverlayFile> {
  const files: Record<string, OverlayFile> = {};
  for (const [name, file] of Object.entries(etc)) {
    const mode = parseInt(file.mode, 8);
    const target = path.posix.join("/etc", name);
    if (file.text !== null) files[target] = { text: file.text, mode };
    else if (file.source !== null) files[target] = { source: file.source, mode };
  }
  return files;
}

/** Writes `files` (by absolute path) below `dir`. */
export async function writeOverlay(dir: string, files: Readonly<Record<string, OverlayFile>>): Promise<void> {
  for (const [target, file] of Object.entries(files)) {
    const destination = path.join(dir, target);
    await mkdir(path.dirname(destination), { recursive: true });
    if ("source" in file) await copyFile(file.source, destination);
    else await writeFile(destination, file.text);
    await chmod(destination, file.mode);
  }
}

/** The shell script run in the chroot: users, groups, time zone, units, host keys. */
export function setupScript(setup: SetupSlice): string {
  const q = shellQuote;
  const lines = ["set -e"];
  const groups = new Map<string, number | null>(Object.entries(setup.groups).map(([n, g]) => [n, g.gid]));
  for (const user of Object.values(setup.users)) {
    for (const group of user.extraGroups) if (!groups.has(group)) groups.set(group, null);
    if (user.group !== null && !groups.has(user.group)) groups.set(user.group, null);
  }
  for (const [name, gid] of groups) lines.push(`getent group ${q(name)} >/dev/null || groupadd ${gid === null ? "" : `-g ${gid} `}${q(name)}`);
  for (const [name, user] of Object.entries(setup.users)) {
    if (name !== "root") {
      const args = [
        user.isNormalUser ? "-m" : "-M",
        ...(user.uid !== null ? ["-u", String(user.uid)] : []),
        ...(user.isNormalUser ? [] : ["-r"]),
        ...(user.group !== null ? ["-g", user.group] : ["-U"]),
        ...(user.extraGroups.length ? ["-G", user.extraGroups.join(",")] : []),
        "-s", user.shell,
        "-c", user.description,
        ...(user.home !== null ? ["-d", user.home] : []),
        name,
      ];
      lines.push(`id -u ${q(name)} >/dev/null 2>&1 || useradd ${args.map(q).join(" ")}`);
    } else {
      lines.push(`usermod -s ${q(user.shell)} root`);
    }
    lines.push(user.hashedPassword === null ? `passwd -l ${q(name)} >/dev/null` : `usermod -p ${q(user.hashedPassword)} ${q(name)}`);
  }
  if (setup.timeZone !== null) {
    lines.push(`ln -sf ${q(`/usr/share/zoneinfo/${setup.timeZone}`)} /etc/localtime`, `echo ${q(setup.timeZone)} > /etc/timezone`);
  }
  for (const { unit, before, after } of setup.units.reorder) {
    const drop = (key: string, names: readonly string[]) =>
      names.map((name) => `-e ${q(`/^${key}=/s/(=|[[:space:]])${name.replaceAll(".", "\\.")}([[:space:]]|$)/\\1\\2/g`)}`);
    const packaged = `/usr/lib/systemd/system/${unit}`;
    lines.push(
      `test -f ${q(packaged)} || { echo "keel: systemd.services.${unit.replace(/\.service$/, "")}.dropBefore/dropAfter: no package ships ${unit}" >&2; exit 1; }`,
      `sed -E ${[...drop("Before", before), ...drop("After", after)].join(" ")} ${q(packaged)} > ${q(`/etc/systemd/system/${unit}`)}`,
    );
  }
  lines.push("systemctl enable systemd-networkd.service systemd-resolved.service");
  for (const unit of setup.units.disable) lines.push(`systemctl disable ${q(unit)} 2>/dev/null || true`);
  for (const unit of setup.units.enable) lines.push(`systemctl enable ${q(unit)}`);
  for (const [target, unit] of setup.units.addWants) lines.push(`systemctl add-wants ${q(target)} ${q(unit)}`);
  lines.push("rm -f /etc/ssh/ssh_host_*", "rm -f /.keel-setup.sh");
  return `${lines.join("\n")}\n`;
}

/** mmdebstrap with the local repository `repo` as its only source; the system keeps a sources line for its mirror. */
export function mmdebstrapArgv(slice: RootfsSlice, overlay: string, output: string, repo: string): string[] {
  return [
    "mmdebstrap",
    "--mode=auto",
    "--variant=minbase",
    `--architectures=${slice.distro.arch}`,
    `--components=${slice.distro.components.join(",")}`,
    `--include=${pinnedIncludes(slice.debs).join(",")}`,
    ...localRepositoryOptions(repo),
    `--customize-hook=sync-in ${shellQuote(overlay)} /`,
    '--customize-hook=chroot "$1" /bin/sh /.keel-setup.sh',
    slice.distro.suite,
    output,
    slice.distro.sources,
  ];
}

async function buildRootfs(context: BuildContext, out: string, slice: RootfsSlice, local: DebSource): Promise<void> {
  await fetchDebs(context.debs, local.mirror, slice.debs, context.signal, local.date);
  const repo = path.join(out, ".repository");
  await localRepository(repo, context.debs, slice.debs, { suite: slice.distro.suite, arch: slice.distro.arch, date: local.date });
  const overlay = path.join(out, ".overlay");
  await writeOverlay(overlay, { ...etcFiles(slice.etc), "/.keel-setup.sh": { text: setupScript(slice.setup), mode: 0o755 } });
  const tarball = path.join(out, "rootfs.tar");
  await run(context, mmdebstrapArgv(slice, overlay, tarball, repo), {
    // mmdebstrap in unshare mode needs a directory it may use as the unprivileged user.
    env: { ...context.env, TMPDIR: context.env.TMPDIR ?? "/tmp" },
  });
  await rm(overlay, { recursive: true, force: true });
  await rm(repo, { recursive: true, force: true });
}

export const rootfsStep = defineStep<RootfsSlice, never, never, DebSource>({
  kind: "rootfs",
  version: 5,
  build: (context, out, { slice, local }) => buildRootfs(context, out, slice, local),
});
