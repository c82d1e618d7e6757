// The root filesystem step: mmdebstrap installs exactly the packages keel.lock
// pins, from a local repository of the store's .debs (fetched once, so a
// rebuild needs no mirror); keel's files
// (hostname, fstab, networkd units, systemd units, /etc files, authorized keys)
// are synced in from an overlay, and a setup script run in the chroot creates
// users and enables units. SSH host keys are removed: each machine makes its
// own on first boot. The kernel is not in it: its modules join the root file
// system where a machine boots it (the image), so a kernel change never
// rebuilds this step. Output: rootfs.tar.
import { chmod, copyFile, mkdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import type { ResolvedSystem } from "../config/project.js";
import { ConfigError } from "../errors.js";
import { shellQuote } from "../host/exec.js";
import type { PinnedDeb } from "../inputs/lock.js";
import { run, type BuildContext } from "./context.js";
import { fetchDebs, localRepository, localRepositoryOptions, pinnedIncludes, type DebSource } from "./debs.js";
import { defineStep } from "./step.js";

/** What every keel system needs besides the configured packages. */
export const basePackages = ["systemd-sysv", "udev", "kmod", "iproute2", "systemd-resolved"];

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
  readonly hostName: string;
  readonly networking: ResolvedSystem["networking"];
  readonly users: ResolvedSystem["users"];
  readonly services: ResolvedSystem["systemd"]["services"];
  readonly etc: Readonly<Record<string, ResolvedSystem["environment"]["etc"][string] & { readonly sourceHash: string | null }>>;
  readonly fileSystems: ResolvedSystem["fileSystems"];
  readonly swapDevices: ResolvedSystem["swapDevices"];
  readonly timeZone: string | null;
  readonly kernelModules: readonly string[];
}


/** A file of the overlay: its text, or a host file to copy, and its mode. */
export type OverlayFile = { readonly text: string; readonly mode: number } | { readonly source: string; readonly mode: number };

type Service = RootfsSlice["services"][string];
type UnitValue = Service["serviceConfig"][string];

export function fstab(fileSystems: RootfsSlice["fileSystems"], swapDevices: RootfsSlice["swapDevices"]): string {
  const lines = ["# Written by keel from fileSystems and swapDevices."];
  for (const [mountPoint, fs] of Object.entries(fileSystems).sort(([a], [b]) => a.localeCompare(b))) {
    const spec = fs.label !== null ? `LABEL=${fs.label}` : (fs.device ?? "");
    // Only block devices are checked: a share's tag (9p, virtiofs) is not one.
    const pass = mountPoint === "/" ? "1" : spec.startsWith("/") || spec.startsWith("LABEL=") ? "2" : "0";
    lines.push([spec, mountPoint, fs.fsType, fs.options.join(",") || "defaults", "0", pass].join("\t"));
  }
  for (const swap of swapDevices) lines.push([swap.device, "none", "swap", "sw", "0", "0"].join("\t"));
  return `${lines.join("\n")}\n`;
}

/** systemd-networkd units: one per configured interface, and DHCP for the rest when networking.useDHCP. */
export function networkUnits(networking: RootfsSlice["networking"]): Record<string, string> {
  const units: Record<string, string> = {};
  for (const [name, iface] of Object.entries(networking.interfaces)) {
    const dhcp = iface.useDHCP ?? (iface.ipv4.addresses.length === 0 && networking.useDHCP);
    const lines = ["[Match]", `Name=${name}`, "", "[Network]"];
    if (dhcp) lines.push("DHCP=yes");
    for (const a of iface.ipv4.addresses) lines.push(`Address=${a.address}/${a.prefixLength}`);
    if (iface.ipv4.addresses.length > 0 && networking.defaultGateway !== null) lines.push(`Gateway=${networking.defaultGateway}`);
    for (const dns of networking.nameservers) lines.push(`DNS=${dns}`);
    units[`10-keel-${name}.network`] = `${lines.join("\n")}\n`;
  }
  if (networking.useDHCP) {
    units["99-keel-dhcp.network"] = "[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n";
  }
  return units;
}

function unitValue(value: UnitValue): string[] {
  if (typeof value === "boolean") return [value ? "yes" : "no"];
  if (Array.isArray(value)) return value.map(String);
  return [String(value)];
}

function section(name: string, settings: Readonly<Record<string, UnitValue>>): string[] {
  const lines = Object.entries(settings).flatMap(([key, value]) => unitValue(value).map((v) => `${key}=${v}`));
  return lines.length === 0 ? [] : [`[${name}]`, ...lines, ""];
}

/**
 * A value as systemd reads it back inside double quotes: it C-unescapes
 * backslashes and quotes and expands % specifiers, so those are doubled.
 */
export function systemdEscape(value: string): string {
  if (/[\n\r]/.test(value)) throw new ConfigError(`A systemd setting cannot hold a line break: ${JSON.stringify(value)}.\nFix: remove the line break from the value in systemd.services.`);
  return value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("%", "%%");
}

/** Whether keel writes the whole unit (it says what to run) rather than extending a package's. */
function ownsUnit(service: Service): boolean {
  return service.script !== null || "ExecStart" in service.serviceConfig;
}

/** Unit files (and scripts) for systemd.services, by path in the root filesystem. */
export function serviceFiles(services: RootfsSlice["services"]): Record<string, OverlayFile> {
  const files: Record<string, OverlayFile> = {};
  for (const [name, service] of Object.entries(services)) {
    if (!service.enable) continue;
    const serviceConfig: Record<string, UnitValue> = { ...service.serviceConfig };
    if (service.script !== null) {
      const script = `/usr/lib/keel/${name}-start`;
      files[script] = { text: `#!/bin/sh\nset -e\n${service.script}\n`, mode: 0o755 };
      serviceConfig.ExecStart = script;
    }
    const environment = Object.entries(service.environment).map(([k, v]) => `"${systemdEscape(`${k}=${v}`)}"`);
    if (environment.length > 0) serviceConfig.Environment = environment;
    const unit: Record<string, UnitValue> = {
      ...(service.description ? { Description: service.description } : {}),
      ...(service.after.length ? { After: service.after } : {}),
      ...(service.before.length ? { Before: service.before } : {}),
      ...(service.wants.length ? { Wants: service.wants } : {}),
      ...(service.requires.length ? { Requires: service.requires } : {}),
      ...service.unitConfig,
    };
    if (ownsUnit(service)) {
      const install: Record<string, UnitValue> = service.wantedBy.length ? { WantedBy: service.wantedBy } : {};
      const text = [...section("Unit", unit), ...section("Service", serviceConfig), ...section("Install", install)].join("\n");
      files[`/etc/systemd/system/${name}.service`] = { text, mode: 0o644 };
    } else {
      const text = [...section("Unit", unit), ...section("Service", serviceConfig)].join("\n");
      if (text) files[`/etc/systemd/system/${name}.service.d/keel.conf`] = { text, mode: 0o644 };
    }
  }
  return files;
}

/** Every file keel puts into the root filesystem, by absolute path. */
export function overlayFiles(slice: RootfsSlice): Record<string, OverlayFile> {
  const files: Record<string, OverlayFile> = {
    "/etc/hostname": { text: `${slice.hostName}\n`, mode: 0o644 },
    "/etc/hosts": { text: `127.0.0.1\tlocalhost\n127.0.1.1\t${slice.hostName}\n::1\tlocalhost ip6-localhost ip6-loopback\n`, mode: 0o644 },
    "/etc/fstab": { text: fstab(slice.fileSystems, slice.swapDevices), mode: 0o644 },
  };
  for (const [name, text] of Object.entries(networkUnits(slice.networking))) files[`/etc/systemd/network/${name}`] = { text, mode: 0o644 };
  if (slice.kernelModules.length > 0) files["/etc/modules-load.d/keel.conf"] = { text: `${slice.kernelModules.join("\n")}\n`, mode: 0o644 };
  Object.assign(files, serviceFiles(slice.services));
  for (const [name, user] of Object.entries(slice.users.users)) {
    const keys = user.openssh.authorizedKeys.keys;
    if (keys.length > 0) files[`/etc/ssh/authorized_keys.d/${name}`] = { text: `${keys.join("\n")}\n`, mode: 0o644 };
  }
  for (const [name, file] of Object.entries(slice.etc)) {
    const mode = parseInt(file.mode, 8);
    const target = path.posix.join("/etc", name);
    if (file.text !== null) files[target] = { text: file.text, mode };
    else if (file.source !== null) files[target] = { source: file.source, mode };
  }
  return files;
}

/** The shell script run in the chroot: users, groups, time zone, units, host keys. */
export function setupScript(slice: RootfsSlice): string {
  const q = shellQuote;
  const lines = ["set -e"];
  const groups = new Map<string, number | null>(Object.entries(slice.users.groups).map(([n, g]) => [n, g.gid]));
  for (const user of Object.values(slice.users.users)) {
    for (const group of user.extraGroups) if (!groups.has(group)) groups.set(group, null);
    if (user.group !== null && !groups.has(user.group)) groups.set(user.group, null);
  }
  for (const [name, gid] of groups) lines.push(`getent group ${q(name)} >/dev/null || groupadd ${gid === null ? "" : `-g ${gid} `}${q(name)}`);
  for (const [name, user] of Object.entries(slice.users.users)) {
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
  if (slice.timeZone !== null) {
    lines.push(`ln -sf ${q(`/usr/share/zoneinfo/${slice.timeZone}`)} /etc/localtime`, `echo ${q(slice.timeZone)} > /etc/timezone`);
  }
  lines.push("systemctl enable systemd-networkd.service systemd-resolved.service");
  for (const [name, service] of Object.entries(slice.services)) {
    const unit = q(`${name}.service`);
    if (!service.enable) lines.push(`systemctl disable ${unit} 2>/dev/null || true`);
    else if (ownsUnit(service)) {
      if (service.wantedBy.length > 0) lines.push(`systemctl enable ${unit}`);
    } else {
      for (const target of service.wantedBy) lines.push(`systemctl add-wants ${q(target)} ${unit}`);
    }
  }
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
  const files: Record<string, OverlayFile> = { ...overlayFiles(slice), "/.keel-setup.sh": { text: setupScript(slice), mode: 0o755 } };
  for (const [target, file] of Object.entries(files)) {
    const destination = path.join(overlay, target);
    await mkdir(path.dirname(destination), { recursive: true });
    if ("source" in file) await copyFile(file.source, destination);
    else await writeFile(destination, file.text);
    await chmod(destination, file.mode);
  }
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
  version: 4,
  build: (context, out, { slice, local }) => buildRootfs(context, out, slice, local),
});
