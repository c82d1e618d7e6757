// The disk step: a bootable GPT disk image of the machine layout
// (src/image/layout.ts) holding the system as generation 1: an ESP with
// systemd-boot, a Boot Loader Spec entry, the kernel and the initrd, and an
// ext4 root partition with generations/1 (the generation's tree) and an empty
// state/. Made as an ordinary user without loop devices: sfdisk writes the
// partition table into the file, mke2fs -d (at the partition's offset, in a
// user namespace so that files keep their owners) fills the root, mkfs.vfat
// and mtools the ESP. The root partition is as small as its content allows;
// it grows to fill a larger disk on first boot (boot.growPartition).
// Output: disk.img (raw, sparse) and disk.json (DiskDescription).
import { copyFile, mkdir, rm, stat, truncate, writeFile } from "node:fs/promises";
import path from "node:path";
import { shellQuote } from "../host/exec.js";
import { bootloaderInTree, diskCommandLine, diskGeometry, espFiles, partitionScript, type DiskGeometry, type DiskIdentity, type Generation } from "../image/layout.js";
import { run, type BuildContext } from "./context.js";
import { generationParts, generationTreeCommands, withSystemTree } from "./image.js";
import type { EtcFile } from "./rootfs.js";
import { defineStep } from "./step.js";

export interface DiskSlice {
  readonly identity: DiskIdentity;
  readonly generation: Generation;
  /** Seconds systemd-boot's menu waits. */
  readonly timeout: number;
  /** Files written over the root filesystem's /etc (a variant's), by path relative to /etc. */
  readonly etc: Readonly<Record<string, EtcFile>>;
}

/** What disk.json records, for `keel image`, `keel run --firmware uefi` and `keel install`. */
export interface DiskDescription {
  readonly identity: DiskIdentity;
  readonly geometry: DiskGeometry;
  readonly generation: Generation;
  /** The image's size: what a disk needs at least. */
  readonly bytes: number;
}

/** The root file system's size in MiB for `usedMiB` of files: room for ext4's metadata and journal; more on each retry. */
export function rootSizeMiB(usedMiB: number, attempt: number): number {
  return Math.ceil((usedMiB * 1.15 + 128) * 1.25 ** attempt);
}

export type Inputs = Readonly<Record<"rootfs" | "kernel" | "initrd", string>>;

/** Shell commands that copy systemd-boot out of the generation's unpacked `tree` to `target` (a file keel owns). */
export function bootloaderCommands(tree: string, target: string): string[] {
  const inTree = shellQuote(path.join(tree, bootloaderInTree));
  return [`test -f ${inTree} || { echo "keel: the generation has no /${bootloaderInTree} (Debian's systemd-boot-efi)" >&2; exit 1; }`, `cat ${inTree} > ${shellQuote(target)}`];
}

/** The files of a generation's ESP, where a builder finds them: systemd-boot copied out of its tree, the kernel's and initrd's outputs. */
export function espSources(inputs: Inputs, bootloader: string): Parameters<typeof espFiles>[2] {
  return { bootloader, kernel: path.join(inputs.kernel, "vmlinuz"), initrd: path.join(inputs.initrd, "initrd.img") };
}

/** Writes an ESP's files (espFiles) into `dir`; returns their bytes. */
export async function stageEsp(dir: string, files: ReturnType<typeof espFiles>): Promise<number> {
  let bytes = 0;
  for (const [name, file] of Object.entries(files)) {
    const target = path.join(dir, name);
    await mkdir(path.dirname(target), { recursive: true });
    if ("text" in file) await writeFile(target, file.text);
    else await copyFile(file.copy, target);
    bytes += (await stat(target)).size;
  }
  return bytes;
}

async function buildDisk(context: BuildContext, out: string, inputs: Inputs, slice: DiskSlice): Promise<void> {
  const q = shellQuote;
  const root = path.join(out, ".root");
  const tree = path.join(root, "generations", String(slice.generation.number));
  const overlay = path.join(out, ".overlay");
  const esp = path.join(out, ".esp");
  const bootloader = path.join(out, ".bootloader.efi");
  const image = path.join(out, "disk.img");
  const parts = await generationParts(inputs, slice.etc, overlay);
  try {
    const geometry = await withSystemTree(context, root, async (sh) => {
      const used = await sh(
        [
          `mkdir -p ${q(tree)} ${q(`${root}/state`)}`,
          ...generationTreeCommands(parts, tree),
          ...bootloaderCommands(tree, bootloader),
          `du -sm ${q(root)} | cut -f1`,
        ].join(" && "),
      );
      const usedMiB = Number(used.trim().split("\n").pop());
      // mke2fs -d says only "Could not allocate block" when the estimate is short: try larger.
      for (let attempt = 0; ; attempt++) {
        const rootMiB = rootSizeMiB(usedMiB, attempt);
        const geometry = diskGeometry(rootMiB);
        await rm(image, { force: true });
        await writeFile(image, "");
        await truncate(image, geometry.totalSectors * 512);
        await run(context, ["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", image], { input: partitionScript(slice.identity, geometry) });
        const made = await sh(
          `mke2fs -q -F -t ext4 -b 4096 -E offset=${geometry.rootStart * 512} -U ${q(slice.identity.root.uuid)} -L ${q(slice.identity.root.label)} -d ${q(root)} ${q(image)} ${rootMiB}M 2>&1 && echo made || true`,
        );
        if (made.trim().endsWith("made")) return geometry;
        if (attempt === 3) throw new Error(`mke2fs could not fit ${usedMiB} MiB into ${rootMiB} MiB:\n${made}`);
      }
    });
    await stageEsp(esp, espFiles(diskCommandLine(slice.identity.root.uuid, slice.generation), slice.generation, espSources(inputs, bootloader), slice.timeout));
    const espOffset = geometry.espStart * 512;
    await run(context, ["mkfs.vfat", "-F", "32", "--invariant", "-n", slice.identity.esp.label, "-i", slice.identity.esp.volumeId, "--offset", String(geometry.espStart), image, String(geometry.espSectors / 2)]);
    await run(context, ["mcopy", "-s", "-i", `${image}@@${espOffset}`, path.join(esp, "EFI"), path.join(esp, "loader"), "::/"], { env: { ...context.env, MTOOLS_SKIP_CHECK: "1" } });
    const description: DiskDescription = { identity: slice.identity, geometry, generation: slice.generation, bytes: geometry.totalSectors * 512 };
    await writeFile(path.join(out, "disk.json"), `${JSON.stringify(description, null, 2)}\n`);
  } finally {
    await Promise.all([overlay, esp, bootloader].map((p) => rm(p, { recursive: true, force: true })));
  }
}

export const diskStep = defineStep<DiskSlice, "rootfs" | "kernel" | "initrd">({
  kind: "disk",
  version: 2,
  build: (context, out, { slice, inputs }) => buildDisk(context, out, inputs, slice),
});
