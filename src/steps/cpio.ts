// A newc cpio archive, as the kernel unpacks an initramfs: written here so that
// every file is owned by root, dated 0 and in a fixed order, whoever builds it.
import { gzipSync } from "node:zlib";

export type CpioEntry =
  | { readonly kind: "directory"; readonly path: string; readonly mode?: number }
  | { readonly kind: "file"; readonly path: string; readonly data: Buffer; readonly mode?: number }
  | { readonly kind: "symlink"; readonly path: string; readonly target: string };

const typeBits = { directory: 0o040000, file: 0o100000, symlink: 0o120000 } as const;

function pad4(length: number): Buffer {
  return Buffer.alloc((4 - (length % 4)) % 4);
}

function header(fields: readonly number[]): string {
  return `070701${fields.map((f) => f.toString(16).padStart(8, "0")).join("")}`;
}

function record(ino: number, mode: number, name: string, data: Buffer): Buffer[] {
  const nameBytes = Buffer.from(`${name}\0`);
  // ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check
  const head = Buffer.from(header([ino, mode, 0, 0, 1, 0, data.length, 0, 0, 0, 0, nameBytes.length, 0]));
  return [head, nameBytes, pad4(head.length + nameBytes.length), data, pad4(data.length)];
}

/** The archive of `entries`, gzip-compressed. Parent directories must come before their contents. */
export function cpioArchive(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  entries.forEach((entry, i) => {
    const name = entry.path.replace(/^\/+/, "");
    if (entry.kind === "directory") parts.push(...record(i + 1, typeBits.directory | (entry.mode ?? 0o755), name, Buffer.alloc(0)));
    else if (entry.kind === "file") parts.push(...record(i + 1, typeBits.file | (entry.mode ?? 0o644), name, entry.data));
    else parts.push(...record(i + 1, typeBits.symlink | 0o777, name, Buffer.from(entry.target)));
  });
  parts.push(...record(0, 0, "TRAILER!!!", Buffer.alloc(0)));
  return gzipSync(Buffer.concat(parts), { level: 6 });
}
