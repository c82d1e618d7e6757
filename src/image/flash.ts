// Writing a disk image onto a disk or into a file, then reading it back.
//
// A disk gets every byte of the image, zeros included: what a disk holds
// where the image has zeros is whatever was there before, and nothing short
// of writing them makes it read zeros (a discard need not). It is opened
// exclusively, so Linux refuses while anything has it mounted or holds it.
// A file gets only the image's data: its all-zero blocks stay holes, and it
// is written under a temporary name and renamed into place once it has been
// read back, so an interrupted or failed write leaves nothing behind. Either
// is synced and then read back and compared with the image's sha256 (a disk
// with its buffers dropped first, so the bytes come from the disk itself).
import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { open, rename, rm, type FileHandle } from "node:fs/promises";
import path from "node:path";
import { UsageError } from "../errors.js";
import { diskSize } from "../host/disks.js";
import { exec } from "../host/exec.js";

export interface FlashTarget {
  readonly kind: "device" | "file";
  readonly path: string;
}

export interface FlashProgress {
  readonly phase: "writing" | "verifying";
  /** Bytes of the image written (or read back) so far. */
  readonly bytes: number;
  readonly total: number;
  /** Seconds since the phase began. */
  readonly seconds: number;
}

export interface FlashOptions {
  /** Called after each chunk of a few MiB. */
  readonly onProgress?: (progress: FlashProgress) => void;
  /** Stops between chunks; the writer rejects with the signal's reason (a file target leaves nothing behind). */
  readonly signal?: AbortSignal;
}

export interface FlashResult {
  /** The image's size: how much of the target now holds it. */
  readonly bytes: number;
  /** What was actually written: all of it to a disk, the blocks that are not all zeros to a file. */
  readonly written: number;
  readonly sha256: string;
  /** Seconds writing took, and reading back. */
  readonly seconds: { readonly writing: number; readonly verifying: number };
}

const chunkBytes = 4 * 1024 * 1024;
/** The granularity of holes in a file: a file system allocates in blocks of 4 KiB. */
const holeBytes = 4096;
const zeros = Buffer.alloc(holeBytes);

/** Writes `image` onto a disk or into a file, syncs it and verifies it by reading it back. */
export async function flashImage(image: string, target: FlashTarget, options: FlashOptions = {}): Promise<FlashResult> {
  const source = await open(image, "r");
  try {
    const total = (await source.stat()).size;
    return target.kind === "device" ? await toDevice(source, total, target.path, options) : await toFile(source, total, target.path, options);
  } finally {
    await source.close();
  }
}

async function toDevice(source: FileHandle, total: number, device: string, options: FlashOptions): Promise<FlashResult> {
  const size = Number((await exec(["blockdev", "--getsize64", device])).stdout.trim());
  if (size < total) {
    throw new UsageError(`The image (${diskSize(total)}) is larger than ${device} (${diskSize(size)}).\nFix: write it to a disk of at least ${diskSize(total)}, or make the image smaller.`);
  }
  const target = await openDevice(device);
  try {
    const copied = await copy(source, target, total, device, false, options);
    await sync(target, device);
    // Without this, reading back would read Linux's cached copy of what was just written.
    await exec(["blockdev", "--flushbufs", device]);
    return await verified(target, total, device, copied, options);
  } finally {
    await target.close();
  }
}

/** The disk opened for reading and writing, exclusively: Linux refuses while it is mounted, swap, or held by another device. */
async function openDevice(device: string): Promise<FileHandle> {
  try {
    return await open(device, constants.O_RDWR | constants.O_EXCL);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EBUSY") {
      throw new UsageError(
        `Linux refuses to open ${device} exclusively: something uses it (a mounted file system, swap, LVM, RAID or dm-crypt on it, or a program that holds it).\n` +
          `Fix: see \`lsblk ${device}\` and \`fuser -vm ${device}\`, and stop what uses it.`,
      );
    }
    if (code === "EACCES" || code === "EPERM") throw new UsageError(`${device} may not be written by this user.\nFix: run keel as root (or as a member of the group that owns ${device}).`);
    if (code === "EROFS") throw new UsageError(`${device} is read-only.\nFix: unlock it (a write-protect switch, or \`blockdev --setrw ${device}\`).`);
    throw ioError(`Opening ${device}`, error);
  }
}

async function toFile(source: FileHandle, total: number, file: string, options: FlashOptions): Promise<FlashResult> {
  const temporary = path.join(path.dirname(file), `.${path.basename(file)}.keel-${process.pid}.tmp`);
  let target: FileHandle;
  try {
    // Private, as the store keeps it: the image holds a whole root file system (password hashes, keys).
    target = await open(temporary, "wx+", 0o600);
  } catch (error) {
    throw ioError(`Creating ${file}`, error);
  }
  let done = false;
  try {
    // A new file reads zeros wherever nothing is written, so the image's zero blocks can stay holes.
    const copied = await copy(source, target, total, file, true, options);
    await target.truncate(total);
    await sync(target, file);
    const result = await verified(target, total, file, copied, options);
    await target.close();
    await rename(temporary, file);
    done = true;
    await syncDirectory(path.dirname(file));
    return result;
  } finally {
    if (!done) {
      await target.close().catch(() => undefined);
      await rm(temporary, { force: true });
    }
  }
}

interface Copied {
  readonly written: number;
  /** The image's sha256, of the bytes read from it to be written. */
  readonly sha256: string;
  readonly seconds: number;
}

/** Copies the image into `target` chunk by chunk; with `sparse`, blocks of zeros are skipped (left as holes). */
async function copy(source: FileHandle, target: FileHandle, total: number, name: string, sparse: boolean, options: FlashOptions): Promise<Copied> {
  const buffer = Buffer.allocUnsafe(chunkBytes);
  const hash = createHash("sha256");
  const started = performance.now();
  let written = 0;
  for (let position = 0; position < total; position += chunkBytes) {
    options.signal?.throwIfAborted();
    const length = Math.min(chunkBytes, total - position);
    await readFully(source, buffer, length, position, "the image");
    const chunk = buffer.subarray(0, length);
    hash.update(chunk);
    for (const [start, end] of sparse ? dataRuns(chunk) : [[0, length] as const]) {
      await writeFully(target, chunk.subarray(start, end), position + start, name);
      written += end - start;
    }
    options.onProgress?.({ phase: "writing", bytes: position + length, total, seconds: (performance.now() - started) / 1000 });
  }
  return { written, sha256: hash.digest("hex"), seconds: (performance.now() - started) / 1000 };
}

/** The [start, end) ranges of a chunk that are not whole blocks of zeros. */
export function dataRuns(chunk: Buffer): [number, number][] {
  const runs: [number, number][] = [];
  for (let start = 0; start < chunk.length; start += holeBytes) {
    const end = Math.min(start + holeBytes, chunk.length);
    if (chunk.subarray(start, end).equals(zeros.subarray(0, end - start))) continue;
    const last = runs.at(-1);
    if (last !== undefined && last[1] === start) last[1] = end;
    else runs.push([start, end]);
  }
  return runs;
}

/** Reads back the image's range of the target and compares it with what was written; a difference is an error naming both hashes. */
async function verified(target: FileHandle, total: number, name: string, copied: Copied, options: FlashOptions): Promise<FlashResult> {
  const buffer = Buffer.allocUnsafe(chunkBytes);
  const hash = createHash("sha256");
  const started = performance.now();
  for (let position = 0; position < total; position += chunkBytes) {
    options.signal?.throwIfAborted();
    const length = Math.min(chunkBytes, total - position);
    await readFully(target, buffer, length, position, name);
    hash.update(buffer.subarray(0, length));
    options.onProgress?.({ phase: "verifying", bytes: position + length, total, seconds: (performance.now() - started) / 1000 });
  }
  const readBack = hash.digest("hex");
  if (readBack !== copied.sha256) {
    throw new UsageError(
      `${name} does not read back what was written: its first ${total} bytes have sha256 ${readBack}, the image ${copied.sha256}.\n` +
        "Fix: check the disk (`dmesg` shows what the kernel saw), and write again, or to another disk.",
    );
  }
  return { bytes: total, written: copied.written, sha256: readBack, seconds: { writing: copied.seconds, verifying: (performance.now() - started) / 1000 } };
}

async function readFully(handle: FileHandle, buffer: Buffer, length: number, position: number, name: string): Promise<void> {
  let done = 0;
  while (done < length) {
    let bytesRead: number;
    try {
      ({ bytesRead } = await handle.read(buffer, done, length - done, position + done));
    } catch (error) {
      throw ioError(`Reading ${name} at byte ${position + done}`, error);
    }
    if (bytesRead === 0) throw new UsageError(`${name} ended at byte ${position + done}, before the ${length - done} bytes keel expected there.\nFix: check that nothing else writes or truncates it, and try again.`);
    done += bytesRead;
  }
}

async function writeFully(handle: FileHandle, data: Buffer, position: number, name: string): Promise<void> {
  let done = 0;
  while (done < data.length) {
    try {
      done += (await handle.write(data, done, data.length - done, position + done)).bytesWritten;
    } catch (error) {
      throw ioError(`Writing ${name} at byte ${position + done}`, error);
    }
  }
}

async function sync(handle: FileHandle, name: string): Promise<void> {
  try {
    await handle.sync();
  } catch (error) {
    throw ioError(`Syncing ${name}`, error);
  }
}

async function syncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** A failed read or write of the target as the user reads it: what, where, and what to check. */
function ioError(what: string, error: unknown): UsageError {
  const code = (error as NodeJS.ErrnoException).code;
  const fix =
    code === "ENOSPC"
      ? "free space on its file system, or write the image elsewhere"
      : code === "ENOENT"
        ? "check that the directory exists"
        : code === "EACCES" || code === "EPERM"
          ? "write it where this user may, or run keel as a user who may"
          : "check the disk (`dmesg` shows what the kernel saw) and try again";
  return new UsageError(`${what} failed: ${(error as Error).message}.\nFix: ${fix}.`, { cause: error });
}
