// keel flash: a system's raw disk image onto a disk or into a file. The
// target is inspected, refused or confirmed before anything is built, so a
// wrong disk or a missing --yes is said at once, not after the image.
import { stat } from "node:fs/promises";
import path from "node:path";
import { systemModules } from "../config/project.js";
import { UsageError } from "../errors.js";
import { checkWritable, describeDisk, diskSize, inspectDisk, type Disk } from "../host/disks.js";
import { exec } from "../host/exec.js";
import { flashImage, type FlashProgress, type FlashTarget } from "../image/flash.js";
import { defineCommand, systemArgument, type Context, type Output } from "./command.js";
import { confirm } from "./confirm.js";
import { diskImage } from "./image.js";
import { formatBytes } from "./output.js";
import { storeOption } from "./planning.js";

const here = (argv: readonly string[]) => exec(argv);

export const flashCommand = defineCommand({
  name: "flash",
  summary: "write a system's disk image onto a disk or into a file",
  description:
    "Writes the system's raw GPT disk image (built if the store lacks it) onto a whole disk or into a file,\n" +
    "then syncs it and reads it back to compare it with the image.\n\n" +
    "A disk is written only after you confirm it: keel shows its model, size, serial and /dev/disk/by-id\n" +
    "names and asks on the terminal; without a terminal, --yes confirms. A disk with a mounted partition,\n" +
    "swap, or LVM, RAID or dm-crypt on it is refused, --yes or not, and Linux refuses it too (keel opens it\n" +
    "exclusively). Name the disk by a /dev/disk/by-id path where you can: /dev/sdX names can move.\n\n" +
    "A file gets only the image's data (its zero blocks stay holes, so it takes little space) and appears\n" +
    "only once it is complete and verified. An existing non-empty file is replaced only when confirmed.",
  positionals: [systemArgument, { name: "device|file", required: true, description: "A whole disk (/dev/disk/by-id/…, /dev/sdb) or a file to write the image to." }],
  options: {
    yes: { type: "boolean", short: "y", description: "Write without asking (needed without a terminal); a disk in use is refused all the same." },
    format: { type: "string", value: "raw", description: "The format to write: raw, the only one a disk can take (the default)." },
    store: storeOption,
  },
  examples: [
    ["keel flash aethelred /dev/disk/by-id/usb-SanDisk_Ultra_4C530001230516105263-0:0", "Write aethelred's image to a USB stick, after showing it and asking."],
    ["keel flash qemu qemu.img", "Write qemu's image into a sparse file."],
    ["keel flash qemu /dev/sdb --yes", "Write it without asking (a script; no terminal)."],
  ],
  async run(context, { values, positionals }) {
    const system = positionals[0] ?? "";
    const argument = positionals[1] ?? "";
    if (values.format !== undefined && values.format !== "raw") {
      throw new UsageError(`keel flash: --format ${values.format} is not a format keel flash writes.\nFix: drop --format (raw is the only one: a disk takes the image's bytes as they are).`);
    }
    // An unknown system is said before anything about the target.
    systemModules(await context.project(), system);
    const target = await chooseTarget(context, system, argument, values.yes === true);
    if (target === undefined) {
      context.out.stderr("keel: not confirmed; nothing was written.\n");
      return 1;
    }
    const image = await diskImage(context, system, { store: values.store });
    if ("exitCode" in image) return image.exitCode;
    if (target.disk !== undefined) await checkUnchanged(target.disk);
    return writeShowingProgress(context, system, image.file, target);
  },
});

interface ChosenTarget extends FlashTarget {
  /** For a disk, what was shown and confirmed. */
  readonly disk?: Disk;
}

/** The target `argument` names, once checked and confirmed; undefined when the user says no. */
async function chooseTarget(context: Context, system: string, argument: string, yes: boolean): Promise<ChosenTarget | undefined> {
  const absolute = path.resolve(context.cwd, argument);
  const stats = await stat(absolute).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return undefined;
    throw new UsageError(`keel flash: cannot look at \`${argument}': ${error.message}.\nFix: name a disk or a file this user may write.`);
  });
  // Under /dev a name that is not a disk is a mistyped disk, never a new file (it would land in memory, on devtmpfs).
  if (stats?.isBlockDevice() || (stats === undefined && absolute.startsWith("/dev/"))) {
    const disk = await inspectDisk(here, absolute);
    checkWritable(disk);
    const confirmed = await confirm(context, {
      yes,
      shown: describeDisk(disk),
      question: `Write ${system}'s image to this disk? Everything on it is lost. [y/N] `,
      refusal: `keel flash: writing ${disk.path} destroys everything on it, and there is no terminal to confirm on`,
      fix: `check that this is the disk, then run \`keel flash ${system} ${argument} --yes\``,
    });
    return confirmed ? { kind: "device", path: disk.path, disk } : undefined;
  }
  if (stats === undefined) {
    const directory = path.dirname(absolute);
    if (!(await stat(directory).catch(() => undefined))?.isDirectory()) {
      throw new UsageError(`keel flash: the directory of \`${argument}' (${directory}) does not exist.\nFix: make it (\`mkdir -p ${directory}\`), or name a file in another directory.`);
    }
    return { kind: "file", path: absolute };
  }
  if (stats.isDirectory()) {
    throw new UsageError(`keel flash: \`${argument}' is a directory.\nFix: name a file in it, e.g. \`keel flash ${system} ${path.join(argument, `${system}.img`)}\`.`);
  }
  if (!stats.isFile()) throw new UsageError(`keel flash: \`${argument}' is neither a disk nor a regular file.\nFix: name a whole disk or a file.`);
  if (stats.size === 0) return { kind: "file", path: absolute };
  const confirmed = await confirm(context, {
    yes,
    shown: `  file    ${absolute}\n  size    ${diskSize(stats.size)}\n  changed ${stats.mtime.toISOString()}`,
    question: `Replace this file with ${system}'s image? [y/N] `,
    refusal: `keel flash: \`${argument}' exists (${formatBytes(stats.size)}), and there is no terminal to confirm replacing it on`,
    fix: `run \`keel flash ${system} ${argument} --yes\` to replace it, or name a new file`,
  });
  return confirmed ? { kind: "file", path: absolute } : undefined;
}

/** Refuses a disk that changed while the image was built: another disk may have taken its name, or something mounted it. */
async function checkUnchanged(confirmed: Disk): Promise<void> {
  const now = await inspectDisk(here, confirmed.path);
  const identity = (disk: Disk) => [disk.model, disk.serial, disk.bytes, ...disk.byId].join("\n");
  if (identity(now) !== identity(confirmed)) {
    throw new UsageError(
      `${confirmed.path} is not the disk you confirmed any more; nothing was written.\nIt was:\n${describeDisk(confirmed)}\nIt is now:\n${describeDisk(now)}\n` +
        "Fix: check which disk is which, and run keel flash again.",
    );
  }
  checkWritable(now);
}

const exitCodes = { SIGINT: 130, SIGTERM: 143 } as const;

async function writeShowingProgress(context: Context, system: string, image: string, target: FlashTarget): Promise<number> {
  const progress = progressReporter(context.out, target.path);
  const abort = new AbortController();
  let interrupted: keyof typeof exitCodes | undefined;
  const stop = (signal: keyof typeof exitCodes): void => {
    interrupted = signal;
    abort.abort(`keel was interrupted (${signal})`);
  };
  const onInt = () => stop("SIGINT");
  const onTerm = () => stop("SIGTERM");
  process.on("SIGINT", onInt);
  process.on("SIGTERM", onTerm);
  try {
    const result = await flashImage(image, target, { onProgress: progress.update, signal: abort.signal });
    progress.close();
    const rate = result.bytes / Math.max(result.seconds.writing, 0.001);
    const sparse = target.kind === "file" ? `; ${formatBytes(result.written)} of data, the rest left as holes` : "";
    context.out.stderr(
      `keel: wrote ${system}'s image to ${target.path}: ${formatBytes(result.bytes)} in ${result.seconds.writing.toFixed(1)} s (${formatBytes(rate)}/s)${sparse}; ` +
        `read back in ${result.seconds.verifying.toFixed(1)} s, sha256 ${result.sha256}.\n`,
    );
    return 0;
  } catch (error) {
    progress.close();
    if (interrupted === undefined) throw error;
    context.out.stderr(
      target.kind === "device"
        ? `keel: interrupted; ${target.path} is partly written and will not boot as it is.\n`
        : `keel: interrupted; nothing was written (${target.path} is as it was).\n`,
    );
    return exitCodes[interrupted];
  } finally {
    process.removeListener("SIGINT", onInt);
    process.removeListener("SIGTERM", onTerm);
  }
}

/** How often plain output (a log, not a terminal) repeats the progress. */
const plainEvery = 15_000;
/** How often a terminal's line is redrawn. */
const liveEvery = 100;

/**
 * Shows a write's progress: on a terminal one line redrawn in place, else
 * a line when a phase starts and ends and every 15 s between.
 */
export function progressReporter(out: Output, name: string): { update(progress: FlashProgress): void; close(): void } {
  let shown = 0;
  let phase: FlashProgress["phase"] | undefined;
  let open = false;
  const line = (p: FlashProgress): string => {
    const rate = p.seconds > 0 ? `, ${formatBytes(p.bytes / p.seconds)}/s` : "";
    return `${p.phase} ${name}: ${formatBytes(p.bytes)} of ${formatBytes(p.total)} (${Math.floor((100 * p.bytes) / Math.max(p.total, 1))}%)${rate}`;
  };
  return {
    update(p) {
      const now = performance.now();
      const first = p.phase !== phase;
      const last = p.bytes === p.total;
      phase = p.phase;
      if (out.interactive) {
        if (!first && !last && now - shown < liveEvery) return;
        if (first && open) out.stderr("\n");
        out.stderr(`\r\x1b[2K${line(p)}`);
        open = true;
      } else {
        if (!first && !last && now - shown < plainEvery) return;
        out.stderr(`${line(p)}\n`);
      }
      shown = now;
    },
    close() {
      if (open) out.stderr("\n");
      open = false;
    },
  };
}
