// keel image: the system's bootable disk (the disk step, src/steps/disk.ts)
// as a file in the format asked for, at the size asked for; or its hybrid ISO
// (the iso step, src/steps/iso.ts).
import { copyFile, readFile, rename, rm, stat, truncate } from "node:fs/promises";
import path from "node:path";
import { UsageError } from "../errors.js";
import { exec } from "../host/exec.js";
import type { DiskDescription } from "../steps/disk.js";
import type { IsoDescription } from "../steps/iso.js";
import { subPlan } from "../plan/plan.js";
import { defineCommand, systemArgument, type Context } from "./command.js";
import { formatBytes } from "./output.js";
import { planFor, realizeShowingProgress, stepOf, storeOption } from "./planning.js";

/** The disk formats `keel image` writes, and qemu-img's options for each (raw is copied); and iso, the ISO step's. */
const formats = {
  raw: null,
  qcow2: ["-O", "qcow2", "-c"],
  vmdk: ["-O", "vmdk", "-o", "subformat=streamOptimized"],
  vhdx: ["-O", "vhdx"],
  iso: null,
} as const;

type Format = keyof typeof formats;

/** A size as `--size` takes it: bytes, or a number with K, M, G or T (powers of 1024, an optional iB or B). */
export function parseSize(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?$/i.exec(text.trim());
  if (!match) return undefined;
  const unit = (match[2] ?? "").toUpperCase();
  const power = unit === "" ? 0 : "KMGT".indexOf(unit) + 1;
  const bytes = Number(match[1]) * 1024 ** power;
  return Number.isFinite(bytes) && bytes > 0 ? Math.ceil(bytes / 512) * 512 : undefined;
}

export interface DiskImage {
  /** The raw disk image in the store. */
  readonly file: string;
  readonly bytes: number;
  readonly description: DiskDescription;
}

/** The store path of the system's step `id`, built if the store lacks it (progress shown), or the exit code when interrupted. */
async function realizeStep(context: Context, system: string, id: string, store: string | undefined): Promise<string | { readonly exitCode: number }> {
  const whole = await planFor(context, system, store);
  const planned = { ...whole, plan: subPlan(whole.plan, stepOf(whole.plan, id)) };
  try {
    const realized = await realizeShowingProgress(context, planned, false);
    return "exitCode" in realized ? realized : realized.path;
  } finally {
    await planned.store.close();
  }
}

/** The system's raw GPT disk image, built if the store lacks it (progress shown), or the exit code when interrupted. */
export async function diskImage(context: Context, system: string, options: { readonly store?: string }): Promise<DiskImage | { readonly exitCode: number }> {
  const realized = await realizeStep(context, system, "disk", options.store);
  if (typeof realized !== "string") return realized;
  const description = JSON.parse(await readFile(path.join(realized, "disk.json"), "utf8")) as DiskDescription;
  return { file: path.join(realized, "disk.img"), bytes: description.bytes, description };
}

/** `keel image --format iso`: the ISO step's image.iso copied to `output`. */
async function writeIso(context: Context, system: string, output: string, store: string | undefined): Promise<number> {
  const started = performance.now();
  const realized = await realizeStep(context, system, "iso", store);
  if (typeof realized !== "string") return realized.exitCode;
  const description = JSON.parse(await readFile(path.join(realized, "iso.json"), "utf8")) as IsoDescription;
  const temporary = `${output}.keel-tmp`;
  try {
    await copyFile(path.join(realized, "image.iso"), temporary);
    await rename(temporary, output);
  } finally {
    await rm(temporary, { force: true });
  }
  context.out.stderr(
    `keel: wrote ${shownPath(context, output)} in ${((performance.now() - started) / 1000).toFixed(1)} s: a ${formatBytes(description.bytes)} hybrid ISO (label ${description.label}).\n` +
      "  It boots on UEFI from a CD, or from a USB stick it is copied onto; the system's state lives in memory.\n",
  );
  return 0;
}

/** `output` as the user would type it: relative to where they are when it is below. */
const shownPath = (context: Context, output: string): string => (output.startsWith(`${context.cwd}/`) ? path.relative(context.cwd, output) : output);

export const imageCommand = defineCommand({
  name: "image",
  summary: "write a system's bootable disk image (raw, qcow2, vmdk, vhdx) or ISO",
  description:
    "Builds the system's disk and writes it as a file: a GPT disk with an EFI system partition (systemd-boot, one\n" +
    "Boot Loader Spec entry) and an ext4 root partition holding the system as generation 1 and an empty state.\n" +
    "Made without root or loop devices. The file systems get the UUIDs and labels that `fileSystems` names (e.g. a\n" +
    "hardware module's /dev/disk/by-uuid/…), so the config and the disk agree. The image is as small as its content\n" +
    "allows unless --size says more; on first boot the root partition grows to fill whatever disk it is on.\n" +
    "Boot it with `keel run <system> --firmware uefi`, write it to a disk with `keel flash`.\n" +
    "--format iso writes a hybrid ISO instead: the same generation, booting on UEFI from a CD or a USB stick, its\n" +
    "state in memory (lost at power-off).",
  positionals: [systemArgument],
  options: {
    format: { type: "string", value: "raw|qcow2|vmdk|vhdx|iso", description: "The file's format (default raw)." },
    size: { type: "string", value: "size", description: "The disk's size, e.g. 8G (default: what the content needs)." },
    output: { type: "string", short: "o", value: "file", description: "Where to write it (default ./<system>.<format>)." },
    store: storeOption,
  },
  examples: [
    ["keel image qemu --format qcow2", "qemu.qcow2, compressed, for any hypervisor."],
    ["keel image aethelred --size 8G -o aethelred.img", "A raw 8 GiB disk image of the office machine."],
    ["keel image qemu --format iso", "qemu.iso, for a CD or a USB stick; nothing it does is kept."],
  ],
  async run(context, { values, positionals }) {
    const system = positionals[0] ?? "";
    const format = (values.format ?? "raw") as Format;
    if (!(format in formats)) {
      throw new UsageError(`keel image: --format ${values.format ?? ""} is not a format keel writes.\nFix: use one of ${Object.keys(formats).join(", ")}.`);
    }
    const size = values.size === undefined ? undefined : parseSize(values.size);
    if (values.size !== undefined && size === undefined) throw new UsageError(`keel image: --size ${values.size} is not a size.\nFix: give bytes or a number with K, M, G or T, e.g. --size 8G.`);
    const output = path.resolve(context.cwd, values.output ?? `${system}.${format}`);
    if (format === "iso") {
      if (values.size !== undefined) throw new UsageError(`keel image: --size is a disk's size; an ISO is as large as its content.\nFix: leave --size out, or make a disk: --format raw|qcow2|vmdk|vhdx.`);
      return writeIso(context, system, output, values.store);
    }
    const started = performance.now();
    const image = await diskImage(context, system, { store: values.store });
    if ("exitCode" in image) return image.exitCode;
    if (size !== undefined && size < image.bytes) {
      const needed = Math.ceil(image.bytes / 1024 / 1024);
      throw new UsageError(`keel image: --size ${values.size} is smaller than ${system}'s content: the disk needs at least ${formatBytes(image.bytes)} (${needed} MiB).\nFix: give --size ${needed}M or more, or leave --size out.`);
    }
    const temporary = `${output}.keel-tmp`;
    const raw = format === "raw" ? temporary : `${output}.keel-raw`;
    try {
      let source = image.file;
      if (format === "raw" || size !== undefined) {
        await exec(["cp", "--sparse=always", image.file, raw]);
        if (size !== undefined) {
          await truncate(raw, size);
          // The backup GPT belongs at the disk's end.
          await exec(["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", "--relocate", "gpt-bak-std", raw]);
        }
        source = raw;
      }
      const options = formats[format];
      if (options !== null) await exec(["qemu-img", "convert", "-q", "-f", "raw", ...options, source, temporary]);
      await rename(temporary, output);
    } finally {
      await rm(temporary, { force: true });
      if (raw !== temporary) await rm(raw, { force: true });
    }
    const file = await stat(output);
    const { identity } = image.description;
    context.out.stderr(
      `keel: wrote ${shownPath(context, output)} in ${((performance.now() - started) / 1000).toFixed(1)} s: ${format}, a ${formatBytes(size ?? image.bytes)} disk, ` +
        `${formatBytes(file.blocks * 512)} on disk.\n` +
        `  root: ext4 UUID ${identity.root.uuid} (label ${identity.root.label}); ESP: vfat ${identity.esp.volumeId.slice(0, 4)}-${identity.esp.volumeId.slice(4)}.\n`,
    );
    return 0;
  },
});
