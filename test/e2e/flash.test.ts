// keel flash with real disks: a loop device over a sparse GPT file with an
// ext4 partition, mounted and then not, and a second loop device too small
// for the image. The CLI refuses a mounted disk, a missing confirmation, a
// partition and a missing device before it builds anything; on a terminal it
// shows the disk and asks. The writer puts a real GPT image (an ESP and an
// ext4 with files) onto the disk and into a sparse file, byte for byte.
// Through the CLI, a build of the seed's qemu system goes into a file: the
// store's disk image byte for byte, sparse, the same as `keel image` writes.
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { UsageError } from "../../src/errors.ts";
import { showCommand } from "../../src/host/exec.ts";
import { flashImage, type FlashProgress } from "../../src/image/flash.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));
const keel = path.join(root, "bin/keel.js");
const seed = path.join(root, "examples/seed");
const isRoot = process.getuid?.() === 0;
const mib = 1024 * 1024;

interface Result {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

const sh = (argv: readonly string[], input?: string): string => execFileSync(argv[0] as string, argv.slice(1), { encoding: "utf8", input, stdio: "pipe" });

/** sha256 of the first `bytes` bytes of a file or device. */
async function sha256Of(file: string, bytes: number): Promise<string> {
  const handle = await open(file, "r");
  try {
    const hash = createHash("sha256");
    const buffer = Buffer.alloc(mib);
    for (let position = 0; position < bytes; position += mib) {
      const { bytesRead } = await handle.read(buffer, 0, Math.min(mib, bytes - position), position);
      hash.update(buffer.subarray(0, bytesRead));
    }
    return hash.digest("hex");
  } finally {
    await handle.close();
  }
}

/** A loop device over `file`, with device nodes for its partitions (partx adds them where the kernel's own scan did not: no udev, no GPT parser). */
function attachLoop(file: string, partitions: number): string {
  const loop = sh(["losetup", "--find", "--show", "--partscan", file]).trim();
  if (partitions > 0) sh(["partx", "--update", loop]);
  const deadline = Date.now() + 10_000;
  while (partitions > 0 && !existsSync(`${loop}p${partitions}`)) {
    if (Date.now() > deadline) throw new Error(`${loop}p${partitions} did not appear`);
    sh(["sleep", "0.1"]);
  }
  return loop;
}

describe("keel flash, with loop devices", { skip: isRoot ? false : "needs root: it attaches loop devices, mounts one and writes block devices" }, () => {
  let scratch = "";
  let env: NodeJS.ProcessEnv = {};
  let loop = "";
  let small = "";
  let mountpoint = "";
  let mounted = false;
  let image = "";
  let imageBytes = 0;
  let imageSha = "";

  const runKeel = (args: readonly string[]): Promise<Result> =>
    new Promise((resolve) => {
      const child = execFile(process.execPath, [keel, ...args], { cwd: seed, env }, (error, stdout, stderr) => resolve({ code: error ? Number(error.code) : 0, stdout, stderr }));
      child.stdin?.end();
    });

  /** keel on a terminal (script(1) gives it one), typing `input`; returns what the terminal showed. */
  const runKeelOnTerminal = (args: readonly string[], input: string): Promise<Result> =>
    new Promise((resolve) => {
      const child = execFile("script", ["--quiet", "--return", "--command", showCommand([process.execPath, keel, ...args]), "/dev/null"], { cwd: seed, env }, (error, stdout, stderr) =>
        resolve({ code: error ? Number(error.code) : 0, stdout: stdout.replaceAll("\r\n", "\n"), stderr }),
      );
      child.stdin?.end(input);
    });

  const diskSha = () => sha256Of(loop, 64 * mib);

  before(() => {
    scratch = mkdtempSync(path.join(os.tmpdir(), "keel-flash-"));
    env = { ...process.env, XDG_CACHE_HOME: path.join(scratch, "cache") };
    // The disk: 64 MiB, an ESP and an ext4 partition, the ext4 mounted.
    const disk = path.join(scratch, "disk.raw");
    sh(["truncate", "--size", "64M", disk]);
    sh(["sfdisk", "--quiet", disk], "label: gpt\nsize=16MiB, type=uefi, name=esp\ntype=linux, name=root\n");
    loop = attachLoop(disk, 2);
    sh(["mkfs.ext4", "-q", `${loop}p2`]);
    mountpoint = path.join(scratch, "mnt");
    mkdirSync(mountpoint);
    sh(["mount", `${loop}p2`, mountpoint]);
    mounted = true;
    // A disk too small for the image.
    const tiny = path.join(scratch, "small.raw");
    sh(["truncate", "--size", "4M", tiny]);
    small = attachLoop(tiny, 0);
    // The image: 32 MiB, a GPT with a FAT ESP and an ext4 root with files, made without loop devices.
    image = path.join(scratch, "image.raw");
    sh(["truncate", "--size", "32M", image]);
    sh(["sfdisk", "--quiet", image], "label: gpt\nsize=8MiB, type=uefi, name=esp\ntype=linux, name=root\n");
    const table = JSON.parse(sh(["sfdisk", "--json", image])) as { partitiontable: { partitions: { start: number; size: number }[] } };
    const [esp, rootfs] = table.partitiontable.partitions;
    assert.ok(esp && rootfs);
    sh(["mkfs.vfat", `--offset=${esp.start}`, image, String((esp.size * 512) / 1024)]);
    const content = path.join(scratch, "content");
    mkdirSync(content);
    writeFileSync(path.join(content, "hello"), "hello from keel\n");
    writeFileSync(path.join(content, "random"), createHash("sha512").update("seed").digest().toString("hex").repeat(8192));
    sh(["mkfs.ext4", "-q", "-F", "-d", content, "-E", `offset=${rootfs.start * 512}`, image, `${(rootfs.size * 512) / 1024}k`]);
    imageBytes = statSync(image).size;
    imageSha = createHash("sha256").update(readFileSync(image)).digest("hex");
  });

  after(() => {
    if (mounted) execFileSync("umount", [mountpoint]);
    for (const device of [loop, small]) if (device !== "") execFileSync("losetup", ["--detach", device]);
    if (scratch !== "") rmSync(scratch, { recursive: true, force: true });
  });

  test("a disk with a mounted partition is refused, --yes or not, naming the mount point; nothing is written", async () => {
    const unchanged = await diskSha();
    const result = await runKeel(["flash", "qemu", loop, "--yes"]);
    assert.equal(result.code, 2, result.stderr);
    assert.equal(
      result.stderr,
      `error: keel will not write ${loop}: it is in use.\n- partition ${loop}p2 is mounted on ${mountpoint}\n` +
        "Fix: unmount its file systems and turn off its swap (umount, swapoff; for LVM, LUKS or RAID on it: vgchange -an, cryptsetup close, mdadm --stop), or name another disk.\n",
    );
    assert.equal(await diskSha(), unchanged);
  });

  test("Linux itself refuses the writer a mounted disk (keel opens it exclusively)", async () => {
    await assert.rejects(flashImage(image, { kind: "device", path: loop }), (error: unknown) => {
      assert.ok(error instanceof UsageError);
      assert.match(error.message, new RegExp(`^Linux refuses to open ${loop} exclusively: something uses it`));
      return true;
    });
  });

  test("unmounted, without a terminal and without --yes: refused, showing the disk and asking for --yes", async () => {
    execFileSync("umount", [mountpoint]);
    mounted = false;
    const unchanged = await diskSha();
    const result = await runKeel(["flash", "qemu", loop]);
    assert.equal(result.code, 2, result.stderr);
    // lsblk knows the ext4 where udev has probed it.
    assert.match(
      result.stderr,
      new RegExp(
        `^error: keel flash: writing ${loop} destroys everything on it, and there is no terminal to confirm on:\n` +
          `  disk    ${loop}\n` +
          "  model   \\(the drive reports none\\)\n" +
          "  size    67\\.1 MB \\(64\\.0 MiB\\)\n" +
          "  serial  \\(the drive reports none\\)\n" +
          "  by-id   \\(none: this machine has no /dev/disk/by-id link to it\\)\n" +
          `  holds   ${loop}p1 \\(16\\.8 MB\\), ${loop}p2 \\((ext4, )?48\\.2 MB\\)\n` +
          `Fix: check that this is the disk, then run \`keel flash qemu ${loop} --yes\`\\.\n$`,
      ),
    );
    assert.equal(await diskSha(), unchanged);
  });

  test("on a terminal it shows the disk and asks; anything but yes writes nothing", async () => {
    const unchanged = await diskSha();
    const result = await runKeelOnTerminal(["flash", "qemu", loop], "n\n");
    assert.equal(result.code, 1, result.stdout);
    assert.match(result.stdout, new RegExp(`^ {2}disk {4}${loop}\n {2}model {3}\\(the drive reports none\\)\n {2}size {4}67\\.1 MB \\(64\\.0 MiB\\)\n`, "m"));
    assert.match(result.stdout, /Write qemu's image to this disk\? Everything on it is lost\. \[y\/N\] keel: not confirmed; nothing was written\.\n/);
    assert.equal(await diskSha(), unchanged);
  });

  test("a partition and a missing device are refused, naming the argument", async () => {
    const partition = await runKeel(["flash", "qemu", `${loop}p1`, "--yes"]);
    assert.equal(partition.code, 2);
    assert.equal(partition.stderr, `error: \`${loop}p1' is a partition of ${loop}; name the whole disk.\nFix: name ${loop} (everything on the disk is written, not one partition).\n`);
    const missing = await runKeel(["flash", "qemu", "/dev/keel-no-such-disk", "--yes"]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, new RegExp(`^error: There is no disk \`/dev/keel-no-such-disk'\\.\nFix: name one of the disks lsblk lists: .*${loop} \\(67\\.1 MB\\)`));
    assert.equal(existsSync("/dev/keel-no-such-disk"), false, "no file was made under /dev");
  });

  test("an existing file is replaced only when confirmed; a file in a missing directory is refused", async () => {
    const file = path.join(scratch, "existing.img");
    writeFileSync(file, "precious\n");
    const result = await runKeel(["flash", "qemu", file]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, new RegExp(`^error: keel flash: \`${file}' exists \\(9 B\\), and there is no terminal to confirm replacing it on:\n {2}file {4}${file}\n`));
    assert.match(result.stderr, new RegExp(`\nFix: run \`keel flash qemu ${file} --yes\` to replace it, or name a new file\\.\n$`));
    assert.equal(readFileSync(file, "utf8"), "precious\n");
    const nowhere = await runKeel(["flash", "qemu", path.join(scratch, "no/such/dir/x.img")]);
    assert.equal(nowhere.code, 2);
    assert.match(nowhere.stderr, /^error: keel flash: the directory of `.*\/no\/such\/dir\/x\.img' \(.*\/no\/such\/dir\) does not exist\.\nFix: make it/);
  });

  test("the image onto the disk: every byte, synced, read back, with progress for both phases", async () => {
    const seen: FlashProgress[] = [];
    const result = await flashImage(image, { kind: "device", path: loop }, { onProgress: (p) => seen.push(p) });
    assert.deepEqual([result.bytes, result.written, result.sha256], [imageBytes, imageBytes, imageSha]);
    assert.equal(await sha256Of(loop, imageBytes), imageSha);
    for (const phase of ["writing", "verifying"] as const) {
      const last = seen.filter((p) => p.phase === phase).at(-1);
      assert.deepEqual([last?.bytes, last?.total], [imageBytes, imageBytes], `the ${phase} phase reaches 100%`);
    }
    const table = JSON.parse(sh(["sfdisk", "--json", loop])) as { partitiontable: { partitions: { name: string }[] } };
    assert.deepEqual(table.partitiontable.partitions.map((p) => p.name), ["esp", "root"], "the disk has the image's partition table");
  });

  test("the image into a new file: identical, sparse, private, and nothing else left in the directory", async () => {
    const directory = path.join(scratch, "out");
    mkdirSync(directory);
    const file = path.join(directory, "qemu.img");
    const result = await flashImage(image, { kind: "file", path: file });
    assert.equal(await sha256Of(file, imageBytes), imageSha);
    assert.equal(result.sha256, imageSha);
    const stats = statSync(file);
    assert.equal(stats.size, imageBytes);
    assert.equal((stats.mode & 0o777).toString(8), "600", "private, like the image in the store");
    assert.ok(stats.blocks * 512 < imageBytes / 2, `the file takes ${stats.blocks * 512} bytes on disk for ${imageBytes}: its zero blocks are holes`);
    assert.equal(result.written < imageBytes / 2, true);
    assert.deepEqual(readdirSync(directory), ["qemu.img"]);
    await flashImage(image, { kind: "file", path: file });
    assert.equal(await sha256Of(file, imageBytes), imageSha, "an existing file is replaced whole");
    assert.deepEqual(readdirSync(directory), ["qemu.img"]);
  });

  test("an interrupted write into a file leaves nothing behind", async () => {
    const directory = path.join(scratch, "interrupted");
    mkdirSync(directory);
    const stop = new AbortController();
    await assert.rejects(flashImage(image, { kind: "file", path: path.join(directory, "qemu.img") }, { signal: stop.signal, onProgress: () => stop.abort(new Error("interrupted")) }), /^Error: interrupted$/);
    assert.deepEqual(readdirSync(directory), []);
  });

  test("a disk smaller than the image is refused with both sizes, before anything is written", async () => {
    const unchanged = await sha256Of(small, 4 * mib);
    await assert.rejects(flashImage(image, { kind: "device", path: small }), (error: unknown) => {
      assert.ok(error instanceof UsageError);
      assert.equal(error.message, `The image (33.6 MB (32.0 MiB)) is larger than ${small} (4.2 MB (4.0 MiB)).\nFix: write it to a disk of at least 33.6 MB (32.0 MiB), or make the image smaller.`);
      return true;
    });
    assert.equal(await sha256Of(small, 4 * mib), unchanged);
  });
});

describe("keel flash into a file, from a build of the seed's qemu", () => {
  const scratch = mkdtempSync(path.join(os.tmpdir(), "keel-flash-build-"));
  const env = { ...process.env, XDG_CACHE_HOME: path.join(scratch, "cache"), KEEL_STORE: path.join(scratch, "store") };

  const runKeel = (args: readonly string[]): Promise<Result> =>
    new Promise((resolve) => {
      const child = execFile(process.execPath, [keel, ...args], { cwd: seed, env, maxBuffer: 64 * mib }, (error, stdout, stderr) => resolve({ code: error ? Number(error.code) : 0, stdout, stderr }));
      child.stdin?.end();
    });

  after(() => rmSync(scratch, { recursive: true, force: true }));

  test("keel flash qemu <new file> --yes: the store's disk image byte for byte, its zero blocks left as holes; keel image's raw file is the same", async () => {
    const file = path.join(scratch, "qemu.img");
    const flashed = await runKeel(["flash", "qemu", file, "--yes"]);
    assert.equal(flashed.code, 0, flashed.stderr);
    const said = new RegExp(`^keel: wrote qemu's image to ${file}: .* of data, the rest left as holes; read back in [\\d.]+ s, sha256 ([0-9a-f]{64})\\.$`, "m").exec(flashed.stderr);
    assert.ok(said, flashed.stderr);
    console.log(`# ${said[0]}`);
    const plan = await runKeel(["build", "qemu", "disk", "--dry-run", "--json"]);
    const disk = (JSON.parse(plan.stdout) as { step: string; path: string; cached: boolean }[]).find((s) => s.step === "disk");
    assert.ok(disk?.cached, plan.stdout + plan.stderr);
    const stored = path.join(disk.path, "disk.img");
    const { bytes } = JSON.parse(readFileSync(path.join(disk.path, "disk.json"), "utf8")) as { bytes: number };
    const [flashedStats, storedStats] = [statSync(file), statSync(stored)];
    assert.deepEqual([flashedStats.size, storedStats.size], [bytes, bytes]);
    const sha = await sha256Of(stored, bytes);
    assert.equal(await sha256Of(file, bytes), sha);
    assert.equal(said[1], sha, "the sha256 keel reports is the image's");
    assert.ok(flashedStats.blocks * 512 <= storedStats.blocks * 512, `the file takes ${flashedStats.blocks * 512} bytes on disk, the store's image ${storedStats.blocks * 512}, for ${bytes}`);
    // The ESP is mostly empty and the root partition has room to spare: a quarter of the image at least is zeros.
    assert.ok(flashedStats.blocks * 512 < bytes * 0.75, `the file takes ${flashedStats.blocks * 512} bytes on disk for ${bytes}: its zero blocks are holes`);

    const imaged = path.join(scratch, "image.img");
    const image = await runKeel(["image", "qemu", "-o", imaged]);
    assert.equal(image.code, 0, image.stderr);
    assert.equal(await sha256Of(imaged, bytes), sha);
    assert.equal(statSync(imaged).size, bytes);
  });
});
