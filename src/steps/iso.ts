// The ISO step: the system as a hybrid ISO 9660 image that boots on UEFI from
// a CD and from a USB stick, generation 1 read-only with its state in memory
// (stage 1's keel.loop= and keel.state=tmpfs; see ARCHITECTURE.md, "The
// machine layout"). On the ISO: the generation's tree as one squashfs file
// (mksquashfs in a user namespace, so that files keep their owners), and an
// EFI system partition image (systemd-boot, one loader entry, the kernel and
// an initrd that also finds a CD or a USB stick) that is both the El Torito
// EFI boot image (a CD) and a GPT partition appended to the ISO (a stick).
// Made by xorriso as an ordinary user. Output: image.iso and iso.json.
import { mkdir, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { ConfigError } from "../errors.js";
import { shellQuote } from "../host/exec.js";
import { espFiles, isoCommandLine, isoGeneration, partitionTypes, type Generation } from "../image/layout.js";
import { run, type BuildContext } from "./context.js";
import { bootloaderCommands, espSources, stageEsp, type Inputs } from "./disk.js";
import { generationParts, generationTreeCommands, withSystemTree } from "./image.js";
import { missingModules } from "./initrd.js";
import type { EtcFile } from "./rootfs.js";
import { defineStep } from "./step.js";

/** What the kernel needs to read an ISO's generation, with the setting that builds each in (stage 1 loads them). */
const isoKernelNeeds = { isofs: "ISO9660_FS", squashfs: "SQUASHFS", loop: "BLK_DEV_LOOP" } as const;

/**
 * The modules an ISO's stage 1 loads when the kernel has them: those above,
 * and the drivers of a CD (AHCI, SCSI CD-ROM) and a USB stick (xHCI/EHCI,
 * usb-storage, UAS, SCSI disk).
 */
export const isoInitrdModules = [...Object.keys(isoKernelNeeds), "cdrom", "sr_mod", "ahci", "sd_mod", "xhci_pci", "ehci_pci", "usb_storage", "uas", "virtio_scsi"];

export interface IsoSlice {
  /** The ISO's volume label (isoLabel), by which stage 1 finds it. */
  readonly label: string;
  /** The ESP image's FAT volume id, 8 hex digits. */
  readonly volumeId: string;
  readonly generation: Generation;
  /** Seconds systemd-boot's menu waits. */
  readonly timeout: number;
  /** Files written over the root filesystem's /etc (a variant's), by path relative to /etc. */
  readonly etc: Readonly<Record<string, EtcFile>>;
}

/** What iso.json records for `keel image --format iso`. */
export interface IsoDescription {
  readonly label: string;
  readonly generation: Generation;
  readonly bytes: number;
}

/** The ESP image's size in KiB for `bytes` of files: FAT's own tables and some slack. */
export function espImageKiB(bytes: number): number {
  return Math.ceil((bytes * 1.05) / 1024) + 2048;
}

async function buildIso(context: BuildContext, out: string, inputs: Inputs, slice: IsoSlice): Promise<void> {
  const missing = await missingModules(inputs.kernel, Object.keys(isoKernelNeeds));
  if (missing.length > 0) {
    const settings = missing.map((name) => `${isoKernelNeeds[name as keyof typeof isoKernelNeeds]}: "y"`).join(", ");
    throw new ConfigError(
      `An ISO of \`${slice.generation.system}' needs a kernel that reads it, and the system's kernel has no ${missing.join(", ")} (neither a module nor built in).\n` +
        `Fix: add ${settings} to boot.kernel.settings (a kernel built from source), or make a disk image instead (keel image ${slice.generation.system}).`,
    );
  }
  const q = shellQuote;
  const files = path.join(out, ".files");
  const tree = path.join(out, ".tree");
  const overlay = path.join(out, ".overlay");
  const esp = path.join(out, ".esp");
  const espImage = path.join(out, ".esp.img");
  const bootloader = path.join(out, ".bootloader.efi");
  const squashfs = path.join(files, isoGeneration);
  const parts = await generationParts(inputs, slice.etc, overlay);
  try {
    await mkdir(path.dirname(squashfs), { recursive: true });
    await withSystemTree(context, tree, (sh) =>
      sh(
        [
          ...generationTreeCommands(parts, tree),
          ...bootloaderCommands(tree, bootloader),
          `mksquashfs ${q(tree)} ${q(squashfs)} -noappend -quiet -no-progress -comp zstd -mkfs-time 0`,
        ].join(" && "),
      ),
    );
    const bytes = await stageEsp(esp, espFiles(isoCommandLine(slice.label, slice.generation), slice.generation, espSources(inputs, bootloader), slice.timeout));
    await run(context, ["mkfs.vfat", "-C", "--invariant", "-n", "KEEL-EFI", "-i", slice.volumeId, espImage, String(espImageKiB(bytes))]);
    await run(context, ["mcopy", "-s", "-i", espImage, path.join(esp, "EFI"), path.join(esp, "loader"), "::/"], { env: { ...context.env, MTOOLS_SKIP_CHECK: "1" } });
    const image = path.join(out, "image.iso");
    // The ESP image appended as GPT partition 2 (a stick) is also the El Torito EFI boot image (a CD).
    await run(
      context,
      [
        "xorriso", "-as", "mkisofs", "-iso-level", "3", "-rational-rock", "-volid", slice.label, "-appid", "keel",
        "-partition_offset", "16", "-append_partition", "2", partitionTypes.esp, espImage, "-appended_part_as_gpt",
        "-e", "--interval:appended_partition_2:all::", "-no-emul-boot", "-o", image, files,
      ],
      { env: { ...context.env, SOURCE_DATE_EPOCH: "0" } },
    );
    const description: IsoDescription = { label: slice.label, generation: slice.generation, bytes: (await stat(image)).size };
    await writeFile(path.join(out, "iso.json"), `${JSON.stringify(description, null, 2)}\n`);
  } finally {
    await Promise.all([files, overlay, esp, espImage, bootloader].map((p) => rm(p, { recursive: true, force: true })));
  }
}

export const isoStep = defineStep<IsoSlice, "rootfs" | "kernel" | "initrd">({
  kind: "iso",
  version: 3,
  build: (context, out, { slice, inputs }) => buildIso(context, out, inputs, slice),
});
