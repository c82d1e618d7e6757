// The machine layout: what a keel machine looks like on disk, the same for a
// disk image, an install and (next) a deploy. Pure: the partition table, the
// ESP's files and the kernel command line are computed here and unit-tested;
// the disk step, `keel install` and keel's stage 1 carry them out.
//
//   GPT disk
//   ├─ ESP (FAT32)             EFI/BOOT/BOOTX64.EFI          systemd-boot (Debian's systemd-boot-efi, from the generation)
//   │                          loader/loader.conf            timeout; no fixed default (the newest entry boots)
//   │                          loader/entries/keel-<N>.conf  one Boot Loader Spec entry per generation (keel-<N>+1.conf on trial)
//   │                          EFI/keel/<N>/vmlinuz, initrd.img
//   └─ root (ext4)  = /keel    generations/<N>/              the generation's tree, never written once complete
//                              state/                        what outlives generations: /var, /home, /root, /srv, keys, machine-id
//                              layers/<N>/{upper,work}       the writable layer over generation N (gone when another boots)
//                              meta/<N>.json                 what keel deployed as generation N (system, hash, kernel, date)
import { createHash } from "node:crypto";
import type { ResolvedSystem } from "../config/project.js";

/** GPT partition types (the Discoverable Partitions Specification's). */
export const partitionTypes = {
  esp: "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
  rootX86_64: "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709",
} as const;

/** MiB. Room for a few generations' kernels and initrds (NixOS suggests 512 MiB too). */
export const espMiB = 512;

/** Partitions start on MiB boundaries; the first after the primary GPT. */
const alignMiB = 1;

const sectorsPerMiB = 2048;

export interface DiskIdentity {
  /** The disk's GPT GUID. */
  readonly diskGuid: string;
  readonly esp: { readonly partUuid: string; readonly volumeId: string; readonly label: string };
  readonly root: { readonly partUuid: string; readonly uuid: string; readonly label: string };
}

/** A UUID made from `seed`: the same system gives the same identifiers, so images are reproducible. */
function derivedUuid(seed: string): string {
  const hex = createHash("sha256").update(seed).digest("hex");
  // Version 4 and variant bits set, as a random UUID has them.
  const variant = ((parseInt(hex[16] ?? "0", 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

type FileSystem = ResolvedSystem["fileSystems"][string];

/** What a file system's `device` or `label` names it by. */
function namedBy(fs: FileSystem | undefined): { readonly uuid?: string; readonly label?: string } {
  if (fs === undefined) return {};
  if (fs.label !== null) return { label: fs.label };
  const match = /^\/dev\/disk\/by-(uuid|label)\/(.+)$/.exec(fs.device ?? "");
  if (match?.[1] === "uuid") return { uuid: match[2] as string };
  if (match?.[1] === "label") return { label: match[2] as string };
  return {};
}

/** Where the config mounts the ESP: a vfat file system at /boot, /efi or /boot/efi (the Boot Loader Spec's places). */
function espMountPoint(config: ResolvedSystem): string | undefined {
  return ["/boot", "/efi", "/boot/efi"].find((mount) => config.fileSystems[mount]?.fsType === "vfat");
}

/** The longest label each file system of the layout takes, in bytes (ext4's s_volume_name, FAT's BS_VolLab). */
const labelBytes = { root: 16, esp: 11 } as const;

/** Labels the config names for the layout's file systems that their file system cannot hold, as assertions' failures. */
export function labelProblems(config: ResolvedSystem): { readonly message: string; readonly option: string }[] {
  const problems: { message: string; option: string }[] = [];
  const check = (mountPoint: string, fs: FileSystem | undefined, max: number, kind: string) => {
    const label = namedBy(fs).label;
    if (label === undefined || Buffer.byteLength(label) <= max) return;
    const option = fs?.label !== null ? `fileSystems."${mountPoint}".label` : `fileSystems."${mountPoint}".device`;
    problems.push({
      message: `${option} names the label ${JSON.stringify(label)} (${Buffer.byteLength(label)} bytes), longer than the ${max} bytes ${kind} keeps: the disk's file system would carry another label than the config finds it by. Use a label of at most ${max} bytes.`,
      option,
    });
  };
  check("/", config.fileSystems["/"], labelBytes.root, "an ext4 label");
  const esp = espMountPoint(config);
  if (esp !== undefined) check(esp, config.fileSystems[esp], labelBytes.esp, "a FAT label");
  return problems;
}

/**
 * The identifiers the disk gets. Those the config names (aethelred's
 * `/dev/disk/by-uuid/…` for / and /boot, or labels) are the ones written, so
 * a hardware config and the image agree; the rest derive from `seed`.
 */
export function diskIdentity(config: ResolvedSystem, seed: string): DiskIdentity {
  const root = namedBy(config.fileSystems["/"]);
  const espAt = espMountPoint(config);
  const esp = namedBy(espAt === undefined ? undefined : config.fileSystems[espAt]);
  const volumeId = esp.uuid !== undefined && /^[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}$/.test(esp.uuid) ? esp.uuid.replace("-", "").toUpperCase() : derivedUuid(`${seed}/esp-id`).slice(0, 8).toUpperCase();
  return {
    diskGuid: derivedUuid(`${seed}/disk`),
    esp: { partUuid: derivedUuid(`${seed}/esp`), volumeId, label: esp.label ?? "ESP" },
    root: { partUuid: derivedUuid(`${seed}/root`), uuid: root.uuid ?? derivedUuid(`${seed}/root-fs`), label: root.label ?? "keel-root" },
  };
}

export interface DiskGeometry {
  readonly espStart: number;
  readonly espSectors: number;
  readonly rootStart: number;
  readonly rootSectors: number;
  /** The whole disk, backup GPT included. */
  readonly totalSectors: number;
}

/** Where the partitions lie for a root file system of `rootMiB`. */
export function diskGeometry(rootMiB: number): DiskGeometry {
  const espStart = alignMiB * sectorsPerMiB;
  const espSectors = espMiB * sectorsPerMiB;
  const rootStart = espStart + espSectors;
  const rootSectors = rootMiB * sectorsPerMiB;
  // One MiB after the root for the backup GPT (33 sectors), keeping the disk a whole number of MiB.
  return { espStart, espSectors, rootStart, rootSectors, totalSectors: rootStart + rootSectors + sectorsPerMiB };
}

/**
 * sfdisk's input for the disk. With `rootSectors` null the root partition
 * takes the rest of the disk (an install onto a disk of any size).
 */
export function partitionScript(identity: DiskIdentity, geometry: Omit<DiskGeometry, "rootSectors" | "totalSectors"> & { readonly rootSectors: number | null }): string {
  const root = geometry.rootSectors === null ? "" : `, size=${geometry.rootSectors}`;
  return [
    "label: gpt",
    `label-id: ${identity.diskGuid}`,
    "unit: sectors",
    `start=${geometry.espStart}, size=${geometry.espSectors}, type=${partitionTypes.esp}, uuid=${identity.esp.partUuid}, name="ESP"`,
    `start=${geometry.rootStart}${root}, type=${partitionTypes.rootX86_64}, uuid=${identity.root.partUuid}, name="${identity.root.label}"`,
    "",
  ].join("\n");
}

/** A generation as the ESP and stage 1 name it. */
export interface Generation {
  readonly number: number;
  /** The system's name and host name, for the boot menu. */
  readonly system: string;
  readonly kernelParams: readonly string[];
}

/** The kernel command line a generation boots with from the disk: stage 1 finds the root by its file system's UUID and mounts generation N. */
export function diskCommandLine(rootUuid: string, generation: Generation): string {
  return [`root=UUID=${rootUuid}`, "rootfstype=ext4", `keel.generation=${generation.number}`, ...generation.kernelParams].join(" ");
}

/** The ESP's directory of generation N's kernel and initrd. */
export const generationEspDir = (generation: number): string => `EFI/keel/${generation}`;

/**
 * An ISO's volume label (ISO 9660 allows capitals, digits and _, at most 32):
 * stage 1 finds the medium by it, so it is the system's own (from `seed`, the
 * system step's hash), not one another stick in the machine might carry.
 */
export const isoLabel = (seed: string): string => `KEEL_${seed.slice(0, 12).toUpperCase()}`;

/** Where on an ISO the generation is: a squashfs of its tree. */
export const isoGeneration = "/keel/generation.squashfs";

/**
 * The kernel command line a generation boots with from an ISO: stage 1 finds
 * the medium by label, mounts the generation from it, keeps the state in
 * memory; systemd ignores /etc/fstab (fstab=no), whose file systems are the
 * machine's disk's (a /boot by UUID would put the boot into emergency mode).
 */
export function isoCommandLine(label: string, generation: Generation): string {
  return [`root=LABEL=${label}`, "rootfstype=iso9660", `keel.loop=${isoGeneration}`, "keel.state=tmpfs", `keel.generation=${generation.number}`, "fstab=no", ...generation.kernelParams].join(" ");
}

/** loader/entries/keel-<N>.conf (Boot Loader Spec type 1) booting with `commandLine`. Sorted by version: the newest generation first. */
export function loaderEntry(commandLine: string, generation: Generation): string {
  const dir = generationEspDir(generation.number);
  return [
    `title keel ${generation.system} (generation ${generation.number})`,
    `version ${generation.number}`,
    "sort-key keel",
    `linux /${dir}/vmlinuz`,
    `initrd /${dir}/initrd.img`,
    `options ${commandLine}`,
    "",
  ].join("\n");
}

/** loader/loader.conf: no fixed default (a fixed default defeats boot counting), the menu's timeout. */
export function loaderConf(timeout: number): string {
  return `timeout ${timeout}\neditor no\n`;
}

/** The ESP's files for a disk or ISO holding one generation booted with `commandLine`, by path inside the ESP: text, or where to copy from. */
export function espFiles(
  commandLine: string,
  generation: Generation,
  files: { readonly bootloader: string; readonly kernel: string; readonly initrd: string },
  timeout: number,
): Record<string, { readonly text: string } | { readonly copy: string }> {
  const dir = generationEspDir(generation.number);
  return {
    "EFI/BOOT/BOOTX64.EFI": { copy: files.bootloader },
    "EFI/systemd/systemd-bootx64.efi": { copy: files.bootloader },
    [`${dir}/vmlinuz`]: { copy: files.kernel },
    [`${dir}/initrd.img`]: { copy: files.initrd },
    "loader/loader.conf": { text: loaderConf(timeout) },
    [`loader/entries/keel-${generation.number}.conf`]: { text: loaderEntry(commandLine, generation) },
  };
}

/** systemd-boot inside a generation's tree (Debian's systemd-boot-efi, pinned with the system's packages). */
export const bootloaderInTree = "usr/lib/systemd/boot/efi/systemd-bootx64.efi";

/**
 * A boot entry file as systemd-boot's boot counting names it:
 * `keel-N.conf` (blessed), `keel-N+LEFT.conf` (on trial, LEFT tries to go),
 * `keel-N+LEFT-DONE.conf` (after DONE tries). systemd-boot renames the file
 * before it boots a counted entry; with no tries left the entry is bad.
 */
export interface EntryFile {
  readonly name: string;
  readonly generation: number;
  /** null: not counted (blessed). */
  readonly triesLeft: number | null;
}

/** An entry file's name read back, or undefined for a file that is not keel's. */
export function parseEntryName(name: string): EntryFile | undefined {
  const match = /^keel-(\d+)(?:\+(\d+)(?:-\d+)?)?\.conf$/.exec(name);
  if (match === null) return undefined;
  return { name, generation: Number(match[1]), triesLeft: match[2] === undefined ? null : Number(match[2]) };
}

/** The name of generation N's entry: blessed, or counted with `tries` boots left. */
export const entryName = (generation: number, tries?: number): string => `keel-${generation}${tries === undefined ? "" : `+${tries}`}.conf`;

/** Whether systemd-boot takes the entry for a failed one (its tries used up): it boots it only when chosen. */
export const isBad = (entry: EntryFile): boolean => entry.triesLeft === 0;

/**
 * The entry systemd-boot boots when nobody chooses (loader.conf names no
 * default): bad entries sort after the others, then the newest version
 * first, and the first entry boots.
 */
export function defaultEntry(entries: readonly EntryFile[]): EntryFile | undefined {
  return [...entries].sort((a, b) => Number(isBad(a)) - Number(isBad(b)) || b.generation - a.generation)[0];
}

/** Kernel command line words a trial boot adds: stage 1 and keel's trial unit see keel.trial; a panic reboots (into the previous generation) after 10 s. */
export const trialParams = ["keel.trial", "panic=10"] as const;

/** A boot entry's text with its `options` line's words passed through `change`. */
function withOptions(entry: string, change: (words: string[]) => string[]): string {
  return entry.replace(/^options[ \t]+(.*)$/m, (_line, words: string) => `options ${change(words.split(/\s+/).filter(Boolean)).join(" ")}`);
}

/** The entry booting as a trial: keel.trial and panic= on its command line (once). */
export function trialEntry(entry: string): string {
  return withOptions(entry, (words) => [...words.filter((w) => !(trialParams as readonly string[]).includes(w)), ...trialParams]);
}

/** The entry blessed: the command line it had before it went on trial. */
export function blessedEntry(entry: string): string {
  return withOptions(entry, (words) => words.filter((w) => !(trialParams as readonly string[]).includes(w)));
}

/** What keel writes beside a generation (meta/<N>.json) when it deploys it. */
export interface GenerationMeta {
  readonly system: string;
  /** The system step's hash. */
  readonly hash: string;
  readonly release: string;
  /** ISO 8601. */
  readonly date: string;
}
