// What keel knows of a disk before it writes one: its size, model, serial
// and stable /dev/disk/by-id names, and whatever uses it (a mounted file
// system, swap, a device mapper, LVM or RAID device on it). The same code
// inspects this machine (exec) and one reached over SSH (Remote.exec): it
// runs a few read-only commands through `run` and parses what they print.
import { ProcessError, UsageError } from "../errors.js";
import * as z from "../schema.js";
import { showCommand } from "./exec.js";

/** Runs a program here or on another machine and returns what it printed; a failure throws. */
export type RunCommand = (argv: readonly string[]) => Promise<{ readonly stdout: string }>;

/** A device as lsblk lists it, with the devices on it (partitions, then what holds them). */
export interface BlockDevice {
  readonly path: string;
  /** The kernel's name (sda, dm-0): /proc/swaps and /dev/disk/by-id name devices by it. */
  readonly kname: string;
  /** disk, part, loop, rom, crypt, lvm, raid1, … */
  readonly type: string;
  readonly bytes: number;
  readonly model: string | null;
  readonly serial: string | null;
  readonly mountpoints: readonly string[];
  readonly fstype: string | null;
  readonly readOnly: boolean;
  readonly children: readonly BlockDevice[];
}

/** A link in /dev/disk/by-id: its name and the kernel name of the device it points to. */
export interface ByIdLink {
  readonly name: string;
  readonly kname: string;
}

/** Everything the inspection commands printed, parsed. */
export interface DiskInventory {
  readonly devices: readonly BlockDevice[];
  readonly byId: readonly ByIdLink[];
  /** The devices and files /proc/swaps lists. */
  readonly swaps: readonly string[];
}

export interface Partition {
  readonly path: string;
  readonly bytes: number;
  readonly fstype: string | null;
}

export interface Disk {
  readonly path: string;
  /** Its /dev/disk/by-id paths, the most stable first (wwn-, nvme-eui., nvme-, ata-, …). */
  readonly byId: readonly string[];
  readonly model: string | null;
  readonly serial: string | null;
  readonly bytes: number;
  readonly readOnly: boolean;
  /** Why writing it now would break something, one reason each; empty when nothing uses it. */
  readonly inUse: readonly string[];
  readonly partitions: readonly Partition[];
}

export const lsblkArgv = ["lsblk", "--json", "--bytes", "--output", "PATH,NAME,KNAME,TYPE,SIZE,MODEL,SERIAL,MOUNTPOINTS,PKNAME,FSTYPE,RO"] as const;
/**
 * Prints "name target" for each link in /dev/disk/by-id, and nothing where
 * there is no such directory (no udev: containers, some rescue systems).
 * Everything else under /dev is pruned unread, so that a directory the user
 * may not read cannot make it fail.
 */
export const byIdArgv = ["find", "/dev", "-mindepth", "1", "-maxdepth", "3", "-path", "/dev/disk/by-id/*", "-printf", "%f %l\\n", "-o", "-path", "/dev/disk", "-o", "-path", "/dev/disk/by-id", "-o", "-prune"] as const;
export const swapsArgv = ["cat", "/proc/swaps"] as const;

interface LsblkEntry {
  readonly path: string;
  readonly kname: string;
  readonly type: string;
  readonly size: number | string;
  readonly model: string | null;
  readonly serial: string | null;
  readonly mountpoints: readonly (string | null)[];
  readonly fstype: string | null;
  readonly ro: boolean | string;
  readonly children?: readonly LsblkEntry[];
}

const entrySchema: z.ZodMiniType<LsblkEntry> = z.looseObject({
  path: z.string(),
  kname: z.string(),
  type: z.string(),
  // Numbers since util-linux 2.33 with --json --bytes; strings before.
  size: z.union([z.number(), z.string().check(z.regex(/^\d+$/))]),
  model: z.nullable(z.string()),
  serial: z.nullable(z.string()),
  mountpoints: z.array(z.nullable(z.string())),
  fstype: z.nullable(z.string()),
  ro: z.union([z.boolean(), z.enum(["0", "1"])]),
  get children() {
    return z.optional(z.array(entrySchema));
  },
});

const lsblkSchema = z.looseObject({ blockdevices: z.array(entrySchema) });

/** lsblk's words: padded with spaces, and empty where the device reports nothing. */
function text(value: string | null): string | null {
  const trimmed = value?.trim() ?? "";
  return trimmed === "" ? null : trimmed;
}

function device(entry: LsblkEntry): BlockDevice {
  return {
    path: entry.path,
    kname: entry.kname,
    type: entry.type,
    bytes: Number(entry.size),
    model: text(entry.model),
    serial: text(entry.serial),
    mountpoints: entry.mountpoints.filter((m): m is string => m !== null && m !== ""),
    fstype: text(entry.fstype),
    readOnly: entry.ro === true || entry.ro === "1",
    children: (entry.children ?? []).map(device),
  };
}

/** The devices `lsblk --json --bytes --output PATH,NAME,KNAME,…` lists (lsblkArgv); throws naming what it lacks. */
export function parseLsblk(json: string): BlockDevice[] {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (error) {
    throw new Error(`it is not JSON (${(error as Error).message})`, { cause: error });
  }
  const parsed = lsblkSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`${issue?.path.map(String).join(".") || "the output"}: ${issue?.message ?? "unexpected"}`);
  }
  return parsed.data.blockdevices.map(device);
}

/** The links `find /dev/disk/by-id -printf '%f %l\n'` lists (byIdArgv). */
export function parseByIdLinks(listing: string): ByIdLink[] {
  return listing
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => {
      // A link's name has no spaces (udev writes them as \x20); its target is ../../<kname>.
      const space = line.lastIndexOf(" ");
      const target = line.slice(space + 1);
      return { name: line.slice(0, space), kname: target.slice(target.lastIndexOf("/") + 1) };
    });
}

/** The devices and files /proc/swaps lists, with its octal escapes (\040 for a space) undone. */
export function parseSwaps(table: string): string[] {
  return table
    .split("\n")
    .slice(1)
    .map((line) => line.split(/[ \t]+/)[0] ?? "")
    .filter((name) => name !== "")
    .map((name) => name.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8))));
}

/** Runs the inspection commands through `run` (here or over SSH) and parses what they print. */
export async function readDiskInventory(run: RunCommand): Promise<DiskInventory> {
  const [lsblk, byId, swaps] = await Promise.all([run(lsblkArgv), run(byIdArgv), run(swapsArgv)]);
  let devices: BlockDevice[];
  try {
    devices = parseLsblk(lsblk.stdout);
  } catch (error) {
    throw new ProcessError(
      `"${showCommand(lsblkArgv)}" printed what keel cannot read: ${(error as Error).message}.\nFix: keel needs lsblk from util-linux 2.37 or newer (its MOUNTPOINTS column).`,
      lsblkArgv,
      0,
      null,
      lsblk.stdout.slice(-2000),
    );
  }
  return { devices, byId: parseByIdLinks(byId.stdout), swaps: parseSwaps(swaps.stdout) };
}

/** Stable kinds of name first: a WWN or EUI is the drive's own, ata-/nvme- carry model and serial, usb- the bridge's. */
const byIdPreference = ["wwn-", "nvme-eui.", "nvme-", "ata-", "scsi-", "usb-", "mmc-", "virtio-"];

function byIdRank(name: string): number {
  const rank = byIdPreference.findIndex((prefix) => name.startsWith(prefix));
  return rank < 0 ? byIdPreference.length : rank;
}

/** The by-id paths of a device, the most stable first, then by name (in code points, whatever the locale). */
export function byIdPaths(kname: string, links: readonly ByIdLink[]): string[] {
  return links
    .filter((link) => link.kname === kname)
    .map((link) => link.name)
    .sort((a, b) => byIdRank(a) - byIdRank(b) || (a < b ? -1 : a > b ? 1 : 0))
    .map((name) => `/dev/disk/by-id/${name}`);
}

function subject(node: BlockDevice, top: BlockDevice): string {
  if (node === top) return node.path;
  return node.type === "part" ? `partition ${node.path}` : `${node.type} device ${node.path}`;
}

/** Why a disk cannot be written now: what is mounted or swap on it, and the devices (LVM, dm-crypt, RAID) on it or its partitions. */
function usesOf(top: BlockDevice, swaps: readonly string[]): string[] {
  const reasons = new Set<string>();
  const visit = (node: BlockDevice, parent: BlockDevice | undefined): void => {
    const who = subject(node, top);
    if (parent !== undefined && node.type !== "part" && (parent === top || parent.type === "part")) {
      reasons.add(`${who} is on ${subject(parent, top)}`);
    }
    for (const mountpoint of node.mountpoints) reasons.add(mountpoint === "[SWAP]" ? `${who} is swap` : `${who} is mounted on ${mountpoint}`);
    if (swaps.includes(node.path) || swaps.includes(`/dev/${node.kname}`)) reasons.add(`${who} is swap`);
    for (const child of node.children) visit(child, node);
  };
  visit(top, undefined);
  return [...reasons];
}

/** The types of device lsblk lists at the top that are disks keel can write. */
const writableTypes = new Set(["disk", "loop"]);

/** The whole disks of an inventory (not optical drives), as keel describes them. */
export function disksOf(inventory: DiskInventory): Disk[] {
  return inventory.devices.filter((d) => writableTypes.has(d.type)).map((d) => diskOf(d, inventory));
}

function diskOf(top: BlockDevice, inventory: DiskInventory): Disk {
  return {
    path: top.path,
    byId: byIdPaths(top.kname, inventory.byId),
    model: top.model,
    serial: top.serial,
    bytes: top.bytes,
    readOnly: top.readOnly,
    inUse: usesOf(top, inventory.swaps),
    partitions: top.children.filter((c) => c.type === "part").map((c) => ({ path: c.path, bytes: c.bytes, fstype: c.fstype })),
  };
}

function scaled(bytes: number, base: number, units: readonly string[]): string {
  let value = bytes;
  let unit = 0;
  while (value >= base && unit < units.length - 1) {
    value /= base;
    unit++;
  }
  return unit === 0 ? `${value} ${units[0]}` : `${value.toFixed(1)} ${units[unit]}`;
}

/** A size as a drive's label says it: "32.0 GB". */
export function decimalSize(bytes: number): string {
  return scaled(bytes, 1000, ["bytes", "kB", "MB", "GB", "TB"]);
}

/** A size as a drive's label says it and as tools show it: "32.0 GB (29.8 GiB)". */
export function diskSize(bytes: number): string {
  return `${decimalSize(bytes)} (${scaled(bytes, 1024, ["bytes", "KiB", "MiB", "GiB", "TiB"])})`;
}

/** What a person checks before a disk is overwritten: which drive it is and what is on it. */
export function describeDisk(disk: Disk): string {
  const rows: [string, string][] = [
    ["disk", disk.path],
    ["model", disk.model ?? "(the drive reports none)"],
    ["size", diskSize(disk.bytes)],
    ["serial", disk.serial ?? "(the drive reports none)"],
    ...(disk.byId.length === 0 ? [["by-id", "(none: this machine has no /dev/disk/by-id link to it)"] as [string, string]] : disk.byId.map((id): [string, string] => ["by-id", id])),
    ["holds", disk.partitions.length === 0 ? "no partitions" : disk.partitions.map((p) => `${p.path} (${[p.fstype, decimalSize(p.bytes)].filter((x) => x !== null).join(", ")})`).join(", ")],
  ];
  return rows.map(([label, value]) => `  ${label.padEnd(6)}  ${value}`).join("\n");
}

/** What a device of lsblk's `type` is, in words: "an LVM volume". */
function kindOf(type: string): string {
  if (type === "lvm") return "an LVM volume";
  if (type === "crypt") return "an encrypted (dm-crypt) device";
  if (type === "rom") return "an optical drive";
  if (type === "mpath") return "a multipath device";
  if (/^(raid|md)/.test(type)) return "a RAID device";
  return `a ${type} device`;
}

function listDisks(inventory: DiskInventory): string {
  // An empty device (an unconfigured zram, a loop device with no file) is nothing to write to.
  const disks = disksOf(inventory).filter((d) => d.bytes > 0);
  if (disks.length === 0) return "(none)";
  return disks.map((d) => `${d.path} (${[d.model, decimalSize(d.bytes)].filter((x) => x !== null).join(", ")})`).join(", ");
}

/** Every device of the inventory with the whole disk it is on and the device it is on. */
function* walk(devices: readonly BlockDevice[], top?: BlockDevice, parent?: BlockDevice): Generator<{ node: BlockDevice; top: BlockDevice; parent?: BlockDevice }> {
  for (const node of devices) {
    yield { node, top: top ?? node, parent };
    yield* walk(node.children, top ?? node, node);
  }
}

/**
 * The disk that `argument` names, `canonical` being its path with every
 * symbolic link resolved (a /dev/disk/by-id link leads to /dev/sdb). A
 * partition, a device on a disk (LVM, LUKS, RAID), an optical drive or a
 * name lsblk does not list are refused, naming the argument.
 */
export function resolveDisk(argument: string, canonical: string, inventory: DiskInventory, where = ""): Disk {
  const shown = canonical === argument ? `\`${argument}'` : `\`${argument}' (${canonical})`;
  const found = [...walk(inventory.devices)].find(({ node }) => node.path === canonical || `/dev/${node.kname}` === canonical);
  if (found === undefined) {
    throw new UsageError(`There is no disk ${shown}${where}.\nFix: name one of the disks lsblk lists${where}: ${listDisks(inventory)}.`);
  }
  const { node, top, parent } = found;
  const whole = (disk: BlockDevice): string => [disk.path, ...byIdPaths(disk.kname, inventory.byId).slice(0, 1)].join(" or ");
  if (node.type === "part" && parent === top) {
    throw new UsageError(`${shown} is a partition of ${top.path}; name the whole disk.\nFix: name ${whole(top)} (everything on the disk is written, not one partition).`);
  }
  if (node !== top) {
    throw new UsageError(`${shown} is ${kindOf(node.type)} on ${top.path}, not a disk.\nFix: name the whole disk, ${whole(top)}, once nothing uses it.`);
  }
  if (!writableTypes.has(node.type)) {
    throw new UsageError(`${shown} is ${kindOf(node.type)}, not a disk keel can write.\nFix: name one of the disks lsblk lists${where}: ${listDisks(inventory)}.`);
  }
  return diskOf(node, inventory);
}

/**
 * Inspects the disk `argument` names, here or (through `run`) on another
 * machine; `where` (" on root@host") goes into the messages.
 */
export async function inspectDisk(run: RunCommand, argument: string, where = ""): Promise<Disk> {
  const [inventory, canonical] = await Promise.all([readDiskInventory(run), run(["realpath", "--canonicalize-missing", "--", argument])]);
  return resolveDisk(argument, canonical.stdout.trim(), inventory, where);
}

/** Refuses a disk that is in use or read-only: writing it would break what runs (and Linux would refuse an exclusive open). */
export function checkWritable(disk: Disk, where = ""): void {
  if (disk.readOnly) {
    throw new UsageError(`${disk.path}${where} is read-only.\nFix: unlock it (a write-protect switch, or \`blockdev --setrw ${disk.path}\`), or name another disk.`);
  }
  if (disk.inUse.length > 0) {
    throw new UsageError(
      `keel will not write ${disk.path}${where}: it is in use.\n${disk.inUse.map((reason) => `- ${reason}\n`).join("")}` +
        "Fix: unmount its file systems and turn off its swap (umount, swapoff; for LVM, LUKS or RAID on it: vgchange -an, cryptsetup close, mdadm --stop), or name another disk.",
    );
  }
}
