// keel install: put a system onto a machine's disk over SSH, without an
// installer. The machine runs any Linux with sshd (a rescue system); keel
// builds here, then partitions and formats the disk there in the machine
// layout (src/image/layout.ts) at the disk's full size, streams the
// generation's tree and the ESP's files, writes an EFI boot entry where it
// can, verifies what it wrote, and reboots only if every step succeeded.
import { createReadStream } from "node:fs";
import { createHash } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { spawn } from "node:child_process";
import path from "node:path";
import { Readable } from "node:stream";
import type { ResolvedSystem } from "../config/project.js";
import { MachineError, UsageError } from "../errors.js";
import { checkWritable, describeDisk, disksOf, inspectDisk, readDiskInventory, type Disk } from "../host/disks.js";
import { exec, shellQuote } from "../host/exec.js";
import { Remote, splitSshOptions } from "../host/ssh.js";
import { bootloaderInTree, diskCommandLine, diskGeometry, diskIdentity, espFiles, partitionScript, type DiskIdentity, type Generation } from "../image/layout.js";
import { subPlan } from "../plan/plan.js";
import { generationSources } from "../steps/image.js";
import type { BootDescription } from "../steps/system.js";
import { defineCommand, systemArgument } from "./command.js";
import { confirm } from "./confirm.js";
import { formatBytes, rate } from "./output.js";
import { planFor, realizeShowingProgress, storeOption } from "./planning.js";

/** What the machine must have to be installed onto, and the Debian package each comes in. */
const neededTools = { sfdisk: "fdisk", "mkfs.vfat": "dosfstools", "mkfs.ext4": "e2fsprogs", tar: "tar", lsblk: "util-linux", sha256sum: "coreutils" } as const;

/** Where the new file systems are mounted on the machine while keel writes them. */
const mountPoint = "/run/keel-install";

/** The sha256 of a local file. */
async function sha256(file: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** The paths of a listing (tar's, find's) relative to the tree (a/b), without dev's contents, which are not copied (devtmpfs). */
function treePaths(listing: string, prefix = "."): string[] {
  return listing
    .split("\n")
    .filter(Boolean)
    .map((line) => path.posix.join(prefix, line).replace(/\/$/, ""))
    .filter((p) => p !== "." && !p.startsWith("dev/"));
}

export const installCommand = defineCommand({
  name: "install",
  summary: "install a system onto a machine's disk over SSH (no installer)",
  description:
    "Builds the system here, then, on a machine booted into any Linux with sshd (a rescue system) that has sfdisk,\n" +
    "mkfs.vfat and mkfs.ext4: partitions and formats the disk in keel's layout at its full size (an ESP with\n" +
    "systemd-boot and an ext4 root with the file systems' UUIDs and labels that `fileSystems` names), copies the\n" +
    "system as generation 1 and the ESP's files, writes an EFI boot entry if the machine booted by UEFI and\n" +
    "boot.loader.efi.canTouchEfiVariables allows it, verifies what it wrote, and reboots only if every step succeeded.\n" +
    "The disk is named by a stable id and confirmed (model, size, serial) unless --yes. SSH is OpenSSH with the\n" +
    "user's config, agent and known_hosts; --ssh-opts adds options.",
  positionals: [systemArgument],
  options: {
    "target-host": { type: "string", value: "user@host", description: "The machine to install onto (root, or a user who may run its commands as root)." },
    "ssh-opts": { type: "string", value: "options", dashValue: true, description: "More ssh options, e.g. '-p 8022 -i key'." },
    disk: { type: "string", value: "device", description: "The disk to install onto, best by /dev/disk/by-id/… (the command lists the disks without it)." },
    yes: { type: "boolean", description: "Do not ask before erasing the disk." },
    "no-reboot": { type: "boolean", description: "Leave the machine running its rescue system afterwards." },
    store: storeOption,
  },
  examples: [
    ["keel install aethelred --target-host root@192.0.2.7 --disk /dev/disk/by-id/nvme-Samsung_SSD_980_S64DNX0R123456", "Install the office machine from a rescue system."],
    ["keel install aethelred --target-host root@localhost --ssh-opts '-p 8022'", "Through a tunnel: the disks there are listed."],
  ],
  async run(context, { values, positionals }) {
    const system = positionals[0] ?? "";
    const target = values["target-host"];
    if (target === undefined) throw new UsageError("keel install: --target-host is missing: which machine to install onto?\nFix: give --target-host root@<address of the machine running a rescue system>.");
    const options = splitSshOptions(values["ssh-opts"] ?? "");
    if (options === undefined) throw new UsageError(`keel install: --ssh-opts ${values["ssh-opts"] ?? ""} has an unterminated quote.\nFix: close the quote.`);
    const remote = new Remote({ target, options, connectTimeout: 15, env: context.env });
    const where = ` on ${remote.where}`;
    const say = (text: string) => context.out.stderr(`keel install: ${text}\n`);
    const run = async (argv: readonly string[]) => remote.exec(argv, { timeout: 600_000 });
    const sh = (script: string) => run(["sh", "-c", `set -e\n${script}`]);

    const root = (await run(["id", "-u"])).stdout.trim() === "0";
    if (!root) throw new UsageError(`keel install: ${target} is not root${where}; partitioning needs root.\nFix: log in as root (--target-host root@…).`);
    const missing = (await run(["sh", "-c", Object.keys(neededTools).map((t) => `command -v ${t} >/dev/null || echo ${t}`).join("; ")])).stdout.split("\n").filter(Boolean);
    if (missing.length > 0) {
      const packages = [...new Set(missing.map((t) => neededTools[t as keyof typeof neededTools]))];
      throw new UsageError(`keel install: the machine${where} lacks ${missing.join(", ")}.\nFix: install them there (Debian: apt install ${packages.join(" ")}).`);
    }
    if (values.disk === undefined) {
      const disks = disksOf(await readDiskInventory(run)).filter((d) => d.bytes > 0 && d.inUse.length === 0);
      throw new UsageError(
        `keel install: which disk${where}? Name it with --disk. The disks nothing uses:\n${disks.map((d) => `${describeDisk(d)}\n`).join("\n") || "  (none)\n"}` +
          `Fix: add --disk ${disks.find((d) => d.byId.length > 0)?.byId[0] ?? "/dev/disk/by-id/…"} (a by-id name stays the same when device names move).`,
      );
    }
    const disk = await inspectDisk(run, values.disk, where);
    checkWritable(disk, where);
    const confirmed = await confirm(context, {
      yes: values.yes === true,
      shown: `The disk${where}:\n${describeDisk(disk)}`,
      question: `Install ${system} onto this disk? Everything on it is lost. [y/N] `,
      refusal: `keel install: installing erases ${disk.path}${where}, and there is no terminal to confirm on`,
      fix: "check that this is the disk, then run again with --yes",
    });
    if (!confirmed) {
      say("not confirmed; nothing was written.");
      return 1;
    }

    const planned = await planFor(context, system, values.store);
    const realized = await realizeShowingProgress(context, { ...planned, plan: subPlan(planned.plan, planned.plan.top) }, false);
    if ("exitCode" in realized) return realized.exitCode;
    try {
      const boot = JSON.parse(await readFile(path.join(realized.path, "boot.json"), "utf8")) as BootDescription;
      const identity = diskIdentity(planned.evaluated.config, planned.plan.top.hash);
      const generation: Generation = { number: 1, system, kernelParams: planned.evaluated.config.boot.kernelParams };
      await installOnto({ run, sh, remote, say, disk, identity, generation, boot, system: realized.path, config: planned.evaluated.config });
    } finally {
      await planned.store.close();
    }
    if (values["no-reboot"]) {
      say(`done; the machine still runs its rescue system (--no-reboot). It boots ${system} from ${disk.byId[0] ?? disk.path} next time.`);
      return 0;
    }
    // In the background, so that the session ends before the machine goes down.
    await run(["sh", "-c", "(sleep 1; systemctl reboot || reboot -f) >/dev/null 2>&1 </dev/null &"]);
    say(`rebooting ${remote.where} into ${system}.`);
    await remote.disconnect();
    return 0;
  },
});

interface Install {
  readonly run: (argv: readonly string[]) => Promise<{ readonly stdout: string }>;
  readonly sh: (script: string) => Promise<{ readonly stdout: string }>;
  readonly remote: Remote;
  readonly say: (text: string) => void;
  readonly disk: Disk;
  readonly identity: DiskIdentity;
  readonly generation: Generation;
  readonly boot: BootDescription;
  /** The system's store path. */
  readonly system: string;
  readonly config: ResolvedSystem;
}

/** Partition, format, copy, register, verify: every step checked, the machine left unmounted. */
async function installOnto(job: Install): Promise<void> {
  const { run, sh, remote, say, disk, identity, generation, boot } = job;
  const q = shellQuote;
  say(`partitioning ${disk.path} (${formatBytes(disk.bytes)}): an ESP and a root partition over the rest of the disk`);
  await run(["wipefs", "--all", "--quiet", disk.path]).catch(() => undefined);
  await remote.pipeTo(["sfdisk", "--quiet", "--wipe", "always", "--wipe-partitions", "always", disk.path], Readable.from([partitionScript(identity, { ...diskGeometry(0), rootSectors: null })]));
  // The kernel names the partitions (sda1, nvme0n1p1); their PARTUUIDs say which is which.
  const listing = await sh(`udevadm settle 2>/dev/null || sleep 2\nlsblk --json --output PATH,PARTUUID ${q(disk.path)}`);
  interface Listed {
    readonly path: string;
    readonly partuuid?: string | null;
    readonly children?: readonly Listed[];
  }
  // lsblk lists a disk's partitions as its children, or beside it when asked for the disk by name.
  const flat = (devices: readonly Listed[]): Listed[] => devices.flatMap((d) => [d, ...flat(d.children ?? [])]);
  const partitions = flat((JSON.parse(listing.stdout) as { blockdevices: Listed[] }).blockdevices);
  const partition = (uuid: string) => {
    const found = partitions.find((p) => p.partuuid?.toLowerCase() === uuid.toLowerCase());
    if (found === undefined) {
      throw new MachineError(`keel install: the partition ${uuid} did not appear on ${disk.path}${on(remote)} after sfdisk wrote it.\nFix: check \`lsblk ${disk.path}\` there (a kernel that cannot reread the table needs a reboot of the rescue system), then run keel install again.`);
    }
    return found.path;
  };
  const espDevice = partition(identity.esp.partUuid);
  const rootDevice = partition(identity.root.partUuid);
  say(`formatting ${espDevice} (FAT32, ${identity.esp.volumeId.slice(0, 4)}-${identity.esp.volumeId.slice(4)}) and ${rootDevice} (ext4, UUID ${identity.root.uuid})`);
  await run(["mkfs.vfat", "-F", "32", "-n", identity.esp.label, "-i", identity.esp.volumeId, espDevice]);
  await run(["mkfs.ext4", "-q", "-F", "-U", identity.root.uuid, "-L", identity.root.label, rootDevice]);
  const tree = `${mountPoint}/root/generations/${generation.number}`;
  const esp = `${mountPoint}/esp`;
  await sh(`mkdir -p ${mountPoint}/root ${mountPoint}/esp\nmount ${q(rootDevice)} ${mountPoint}/root\nmount ${q(espDevice)} ${esp}\nmkdir -p ${q(tree)} ${mountPoint}/root/state`);
  try {
    // The system's links to its rootfs and kernel outputs; a plain system has no /etc files of a variant to add.
    const { tarball: rootfs, modules, kernelConfig } = generationSources({ rootfs: path.join(job.system, "rootfs"), kernel: path.join(job.system, "kernel") });
    const total = (await stat(rootfs)).size;
    const started = performance.now();
    let shown = 0;
    const progress = (bytes: number) => {
      if (performance.now() - shown < 1000) return;
      shown = performance.now();
      say(`copying the generation: ${rate(bytes, total, started)}`);
    };
    await remote.pipeTo(["tar", "-x", "--numeric-owner", "-p", "-C", tree, "--exclude=./dev/*"], createReadStream(rootfs), progress);
    say(`copied the root file system: ${rate(total, null, started)}`);
    const modulesTar = spawn("tar", ["-c", "-C", modules, "--owner=0", "--group=0", "--numeric-owner", "."], { stdio: ["ignore", "pipe", "inherit"] });
    await sh(`mkdir -p ${q(`${tree}/usr/lib/modules`)}`);
    await remote.pipeTo(["tar", "-x", "--numeric-owner", "-p", "-C", `${tree}/usr/lib/modules`], modulesTar.stdout);
    await remote.pipeTo(["sh", "-c", `cat > ${q(`${tree}/usr/lib/modules/${boot.release}/config`)}`], createReadStream(kernelConfig));

    say(`writing the ESP: systemd-boot, ${boot.release}'s kernel and initrd, the boot entry`);
    const files = espFiles(diskCommandLine(identity.root.uuid, generation), generation, { bootloader: `${tree}/${bootloaderInTree}`, kernel: boot.kernel, initrd: boot.initrd }, job.config.boot.loader.timeout);
    const expected: Record<string, string> = {};
    for (const [name, file] of Object.entries(files)) {
      const destination = `${esp}/${name}`;
      await sh(`mkdir -p ${q(path.posix.dirname(destination))}`);
      if ("text" in file) {
        await remote.pipeTo(["sh", "-c", `cat > ${q(destination)}`], Readable.from([file.text]));
        expected[name] = createHash("sha256").update(file.text).digest("hex");
      } else if (file.copy.startsWith(`${tree}/`)) {
        await run(["cp", file.copy, destination]);
      } else {
        await remote.pipeTo(["sh", "-c", `cat > ${q(destination)}`], createReadStream(file.copy));
        expected[name] = await sha256(file.copy);
      }
    }
    await efiBootEntry(job, say);

    say("verifying what was written");
    const sums = (await sh(`cd ${esp}\nsha256sum ${Object.keys(expected).map(q).join(" ")}`)).stdout;
    for (const [name, sum] of Object.entries(expected)) {
      if (!sums.includes(`${sum}  ${name}`)) throw new MachineError(`keel install: ${name} on the ESP${on(remote)} does not read back as keel wrote it; the machine was not rebooted.\nFix: check the disk (dmesg there), then run keel install again.`);
    }
    const wanted = new Set([
      ...treePaths((await exec(["tar", "--quoting-style=literal", "-tf", rootfs])).stdout),
      "usr/lib/modules",
      ...treePaths((await exec(["find", ".", "-mindepth", "1"], { cwd: modules })).stdout, "usr/lib/modules"),
    ]);
    const found = new Set(treePaths((await sh(`cd ${q(tree)}\nfind . -xdev -mindepth 1 ! -path './dev/*'`)).stdout));
    const lost = [...wanted].filter((p) => !found.has(p));
    if (lost.length > 0) {
      throw new MachineError(`keel install: ${lost.length} files of the generation are missing${on(remote)}, e.g. ${lost.slice(0, 3).join(", ")}; the machine was not rebooted.\nFix: check the disk and its free space there, then run keel install again.`);
    }
    say(`verified: ${found.size} files of generation ${generation.number}, ${Object.keys(expected).length} files on the ESP`);
  } finally {
    await sh(`sync\numount ${mountPoint}/esp ${mountPoint}/root`).catch(() => undefined);
  }
}

const on = (remote: Remote) => ` on ${remote.where}`;

/** An EFI boot entry for systemd-boot, when the machine booted by UEFI and the config lets keel touch the variables. */
async function efiBootEntry(job: Install, say: (text: string) => void): Promise<void> {
  const fallback = "the firmware finds systemd-boot at the removable-media path \\EFI\\BOOT\\BOOTX64.EFI";
  if (!job.config.boot.loader.efi.canTouchEfiVariables) return say(`no EFI boot entry written (boot.loader.efi.canTouchEfiVariables is false); ${fallback}`);
  const efi = (await job.sh("[ -d /sys/firmware/efi ] && command -v efibootmgr >/dev/null && echo yes || true")).stdout.trim() === "yes";
  if (!efi) return say(`no EFI boot entry written (the machine did not boot by UEFI, or has no efibootmgr); ${fallback}`);
  await job.run(["efibootmgr", "--quiet", "--create", "--disk", job.disk.path, "--part", "1", "--label", `keel ${job.generation.system}`, "--loader", "\\EFI\\systemd\\systemd-bootx64.efi"]);
  say("wrote an EFI boot entry for systemd-boot");
}
