// A probe (probe.ts) written as a typed keel module: deterministic (sorted,
// no time but the header's date), formatted, and saying in comments what the
// probe could not know instead of guessing it.
import type { BlockDevice, Mount, Probe } from "./probe.js";

/** Filesystems that are no storage of the machine's own. */
const pseudo = new Set([
  "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts", "devtmpfs", "efivarfs", "fuse", "fuse.portal", "fusectl",
  "hugetlbfs", "mqueue", "nsfs", "overlay", "proc", "pstore", "ramfs", "rpc_pipefs", "securityfs", "squashfs", "sysfs", "tmpfs", "tracefs",
]);

/** The mount options worth keeping, by filesystem; the rest are defaults or the kernel's own. */
function keptOptions(mount: Mount): string[] {
  const flags = ["ro", "noatime", "nodiratime", "nosuid", "nodev", "noexec"];
  const byType: Record<string, RegExp> = { vfat: /^(fmask|dmask|umask|uid|gid)=/, btrfs: /^(subvol|compress|compress-force)=/ };
  const kept = mount.options.filter((o) => flags.includes(o) || (byType[mount.fsType]?.test(o) ?? false));
  return [...new Set(kept)];
}

export interface HardwareModule {
  /** The module's text. */
  readonly text: string;
  /** What the probe could not know, one line each (also in the text, as comments). */
  readonly unknown: readonly string[];
}

const q = (text: string): string => JSON.stringify(text);
const list = (items: readonly string[]): string => `[${items.map(q).join(", ")}]`;

/** The device's path that names the filesystem itself: by UUID read from its superblock. */
function stableDevice(block: BlockDevice | undefined): { device: string } | { unknown: string } {
  if (block === undefined) return { unknown: "it is not a block device keel could look at" };
  if (block.problem !== undefined) return { unknown: block.problem };
  if ("problem" in block.blkid) return { unknown: `its UUID could not be read (${block.blkid.problem})` };
  const uuid = block.blkid.UUID;
  if (uuid === undefined) return { unknown: `blkid -p read no UUID from ${block.path}` };
  return { device: `/dev/disk/by-uuid/${uuid}` };
}

/** The modules the kernel needs to reach a block device: every node's modalias resolved, disk first. */
function storageModules(probe: Probe, path: string, seen = new Set<string>()): { modules: string[]; unresolved: string[] } {
  const block = probe.blocks.get(path) ?? [...probe.blocks.values()].find((b) => b.name === path);
  if (block === undefined || seen.has(block.path)) return { modules: [], unresolved: [] };
  seen.add(block.path);
  const modules: string[] = [];
  const unresolved: string[] = [];
  for (const slave of block.slaves) {
    const below = storageModules(probe, slave, seen);
    modules.push(...below.modules);
    unresolved.push(...below.unresolved);
  }
  if (block.dmUuid?.startsWith("CRYPT-")) modules.push("dm_crypt");
  for (const node of block.nodes) {
    const resolved = probe.aliases?.get(node.modalias);
    if (resolved === undefined) unresolved.push(`${node.modalias} (driver ${node.driver ?? "none"})`);
    else modules.push(...resolved);
  }
  return { modules, unresolved };
}

/**
 * The mounts that are the machine's file systems. On a machine keel laid out
 * (ARCHITECTURE.md, "The machine layout") / is the generation under its
 * writable layer, an overlay, and the root file system is mounted at /keel
 * with the generation and the state inside it: that file system is "/".
 */
function machineMounts(probe: Probe): { readonly mounts: readonly Mount[]; readonly keelLayout: boolean; readonly noRoot: string | undefined } {
  const keel = probe.mounts.find((m) => m.mountPoint === "/keel" && m.root === "/" && m.source.startsWith("/dev/"));
  const generation = probe.mounts.find((m) => m.mountPoint === "/keel/generation");
  const overlay = probe.mounts.find((m) => m.mountPoint === "/")?.fsType === "overlay";
  // On a disk the generation is a directory of the root file system; `keel run` and an ISO bring it on a device of its own.
  const keelLayout = keel !== undefined && overlay && generation?.root.startsWith("/generations/") === true;
  const noRoot =
    overlay && generation !== undefined && !keelLayout
      ? "the machine runs a generation keel brought on a device of its own (`keel run`'s image, an ISO): it has no root file system of keel's layout; probe it once installed"
      : undefined;
  const mounts = probe.mounts
    .filter((m) => m.source.startsWith("/dev/") && !pseudo.has(m.fsType) && !/^\/(proc|sys|dev|run)(\/|$)/.test(m.mountPoint))
    .filter((m) => m.root === "/" || m.fsType === "btrfs")
    .filter((m) => !(keelLayout || noRoot !== undefined) || !(m.mountPoint === "/keel" || m.mountPoint.startsWith("/keel/")));
  return { mounts: keelLayout && keel !== undefined ? [...mounts, { ...keel, mountPoint: "/" }] : mounts, keelLayout, noRoot };
}

/** The archive component a Debian section is in ("non-free-firmware/kernel" → non-free-firmware, "kernel" → main). */
const componentOf = (section: string): string => (section.includes("/") ? section.slice(0, section.indexOf("/")) : "main");

/** Debian 12 keeps its firmware and microcode packages in this component; said when the machine's apt cannot say. */
const firmwareComponent = "non-free-firmware";

/** The firmware and microcode packages the machine's devices and CPU use, with their components and why. */
function firmwarePackages(probe: Probe, bareMetal: boolean): { readonly packages: ReadonlyMap<string, { component: string; why: string[] }>; readonly notes: string[]; readonly unknown: string[] } {
  const packages = new Map<string, { component: string; why: string[] }>();
  const notes: string[] = [];
  const unknown: string[] = [];
  const devicesOf = (module: string) => probe.devices.filter((d) => d.module === module).map((d) => `${d.what} (${d.id})`);
  const have = probe.firmwareFiles.have;
  if (have === undefined) unknown.push(`packages (firmware): ${probe.problems.find((p) => p.section === "firmware-files")?.text ?? "the drivers' firmware could not be asked"}`);
  for (const file of have ?? []) {
    if (file.owner === null) {
      notes.push(`${file.module} loads ${file.file}, which no Debian package on the machine holds: copied there by hand?`);
      continue;
    }
    const entry = packages.get(file.owner) ?? { component: file.section === null ? firmwareComponent : componentOf(file.section), why: [] };
    const why = `${file.module} for ${devicesOf(file.module).join(", ") || "a device"}`;
    if (!entry.why.includes(why)) entry.why.push(why);
    packages.set(file.owner, entry);
  }
  // A device's driver that found none of its files (one that has a file may have asked for newer ones first: iwlwifi
  // does). Only the PCI and USB devices: a load by something else (cfg80211's regulatory.db) names no device's firmware.
  const served = new Set((have ?? []).map((f) => f.module));
  const moduleAt = new Map(probe.devices.map((d) => [d.id, d.module]));
  for (const failed of probe.firmwareFiles.failed.filter((f) => moduleAt.has(f.device) && !served.has(moduleAt.get(f.device) ?? ""))) {
    unknown.push(`packages: ${failed.driver} (${failed.device}) asked for the firmware ${failed.file}, which the machine does not have; \`apt-file search ${failed.file}\` names its package (Debian's are in ${firmwareComponent})`);
  }
  const microcode = !bareMetal ? undefined : probe.cpu.vendor === "GenuineIntel" ? "intel-microcode" : probe.cpu.vendor === "AuthenticAMD" ? "amd64-microcode" : undefined;
  if (microcode !== undefined) {
    const section = probe.microcode.get(microcode) ?? null;
    packages.set(microcode, {
      component: section === null ? firmwareComponent : componentOf(section),
      why: [`the ${probe.cpu.vendor} CPU's microcode updates${section === null ? ` (the machine's apt does not know the package; Debian 12 has it in ${firmwareComponent})` : ""}`],
    });
  }
  return { packages, notes, unknown };
}

/** The module's text for a probe of `where` (e.g. "root@192.0.2.1", "this machine") on `date` (YYYY-MM-DD). */
export function hardwareModule(probe: Probe, where: string, date: string): HardwareModule {
  const unknown: string[] = probe.problems.filter((p) => p.section !== "aliases" && !p.section.startsWith("block ")).map((p) => p.text);
  const blockOf = (source: string) => probe.blocks.get(source);
  const machine = machineMounts(probe);
  const mounts = [...machine.mounts].sort((a, b) => a.mountPoint.localeCompare(b.mountPoint));
  const fileSystems: string[] = [];
  for (const mount of [...new Map(mounts.map((m) => [m.mountPoint, m])).values()]) {
    const stable = stableDevice(blockOf(mount.source));
    const options = keptOptions(mount);
    if ("unknown" in stable) {
      const why = `fileSystems.${q(mount.mountPoint)}: ${mount.source} (${mount.fsType}) is mounted there, but ${stable.unknown}`;
      unknown.push(why);
      fileSystems.push(`    // ${why}.`);
      continue;
    }
    fileSystems.push(`    ${q(mount.mountPoint)}: { device: ${q(stable.device)}, fsType: ${q(mount.fsType)}${options.length > 0 ? `, options: ${list(options)}` : ""} },`);
  }
  if (!mounts.some((m) => m.mountPoint === "/")) {
    const why = `fileSystems."/": ${machine.noRoot ?? "no block device is mounted at / (a container, or a root keel cannot see)"}`;
    unknown.push(why);
    fileSystems.push(`    // ${why}.`);
  }
  const swaps: string[] = [];
  for (const swap of [...probe.swaps].sort((a, b) => a.path.localeCompare(b.path))) {
    if (swap.type !== "partition") {
      swaps.push(`    { device: ${q(swap.path)} },`);
      continue;
    }
    if (/^\/dev\/zram/.test(swap.path)) continue;
    const stable = stableDevice(blockOf(swap.path));
    if ("unknown" in stable) {
      const why = `swapDevices: ${swap.path}, but ${stable.unknown}`;
      unknown.push(why);
      swaps.push(`    // ${why}.`);
    } else swaps.push(`    { device: ${q(stable.device)} },`);
  }
  // The initrd needs what reaches the root (and, behind LUKS, the keyboard the passphrase is typed on).
  const root = mounts.find((m) => m.mountPoint === "/");
  const storage = root === undefined ? { modules: [], unresolved: [] } : storageModules(probe, root.source);
  const crypt = storage.modules.includes("dm_crypt");
  const keyboard = crypt ? probe.keyboards.flatMap((alias) => probe.aliases?.get(alias) ?? []) : [];
  const initrdModules = [...new Set([...storage.modules, ...keyboard])].sort();
  const initrd: string[] = [];
  if (probe.aliases === undefined) {
    const why = `boot.initrd.availableKernelModules: ${probe.problems.find((p) => p.section === "aliases")?.text ?? "the kernel's modules could not be asked"}; the path to / is ${storage.unresolved.join(", ") || "not known"}`;
    unknown.push(why);
    initrd.push(`      // ${why}.`);
  } else {
    if (storage.unresolved.length > 0) initrd.push(`      // The kernel names no module for ${storage.unresolved.join(", ")}: built in, or needing none.`);
    initrd.push(`      availableKernelModules: ${list(initrdModules)},`);
    // The other filesystems are mounted after the root, when every module is at hand: named, not put in the initrd.
    const others = mounts
      .filter((m) => m !== root)
      .map((m) => ({ mountPoint: m.mountPoint, modules: [...new Set(storageModules(probe, m.source).modules)].filter((x) => !initrdModules.includes(x)).sort() }))
      .filter((m) => m.modules.length > 0);
    if (others.length > 0) initrd.push(`      // After the root, the system loads ${others.map((o) => `${o.modules.join(", ")} for ${o.mountPoint}`).join("; ")}.`);
  }
  const flags = new Set(probe.cpu.flags);
  const kvm = flags.has("vmx") ? ["kvm-intel"] : flags.has("svm") ? ["kvm-amd"] : [];
  const bareMetal = probe.virt === "none" && probe.container === undefined;
  if (probe.container !== undefined) unknown.unshift(`the machine's hardware: this is a container (${probe.container}), whose devices, firmware and kernel are its host's; probe the host`);
  const firmware = firmwarePackages(probe, bareMetal);
  unknown.push(...firmware.unknown);
  const packageNames = [...firmware.packages.keys()].sort();
  const components = [...new Set(["main", ...[...firmware.packages.values()].map((p) => p.component)])];
  const virtualisation =
    probe.container !== undefined
      ? `a container (${probe.container}, systemd-detect-virt)`
      : probe.virt === undefined
        ? "virtualisation: not known"
        : bareMetal
          ? "bare metal (systemd-detect-virt)"
          : `a virtual machine (${probe.virt}, systemd-detect-virt): no microcode is asked for, the host's applies`;
  const interfaces = [...probe.net].sort((a, b) => a.name.localeCompare(b.name)).map((n) => `      ${/^[A-Za-z_]\w*$/.test(n.name) ? n.name : q(n.name)}: { useDHCP: true }, // ${n.driver ?? "no driver bound"}`);

  const header = [
    `// The hardware of ${where}, probed by \`keel hardware-config\` on ${date}.`,
    "// Regenerate it rather than edit it; the system's own modules can override any of it.",
    `// Kernel ${probe.kernel.release} (${probe.kernel.machine}), booted by ${probe.firmware === "uefi" ? "UEFI" : "BIOS (keel's machine layout boots by UEFI)"}; ${virtualisation}.`,
    ...(machine.keelLayout ? ["// Laid out by keel: its root file system is the one mounted at /keel."] : []),
    ...(unknown.length > 0 ? ["// Not known to the probe:", ...unknown.map((u) => `//   ${u}.`)] : []),
  ];
  const lines = [
    ...header,
    'import { defineModule } from "keel";',
    "",
    "export default defineModule({",
    "  boot: {",
    "    initrd: {",
    ...initrd,
    "    },",
    `    kernelModules: ${list(kvm)},`,
    "  },",
    "  fileSystems: {",
    ...fileSystems,
    "  },",
    swaps.length === 0 ? "  swapDevices: []," : ["  swapDevices: [", ...swaps, "  ],"].join("\n"),
    ...firmware.notes.map((n) => `  // ${n}`),
    ...(packageNames.length === 0
      ? []
      : [
          ...packageNames.map((name) => {
            const entry = firmware.packages.get(name);
            return `  // ${name} (${entry?.component ?? firmwareComponent}): ${entry?.why.join("; ") ?? ""}.`;
          }),
          `  packages: ${list(packageNames)},`,
          ...(components.length > 1 ? [`  distro: { components: ${list(components)} },`] : []),
        ]),
    ...(interfaces.length === 0 ? [] : ["  networking: {", "    interfaces: {", ...interfaces, "    },", "  },"]),
    "});",
    "",
  ];
  return { text: lines.join("\n"), unknown };
}
