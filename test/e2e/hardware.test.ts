// keel hardware-config end to end: a VM booted by keel under OVMF (`keel run
// --firmware uefi`) with a virtio disk and NIC, a SATA disk on q35's AHCI and
// an NVMe disk, the two extra disks formatted and mounted in the guest, probed
// over SSH on 127.0.0.1. The module names each file system by the UUID on it,
// the root's storage path for the initrd; the same machine gives the same
// text; a re-made file system gives its new UUID. Written over the project's
// hand-written hardware file, it evaluates, and the system built from it is
// deployed to that VM: the new generation boots under OVMF to SSH with every
// file system mounted by those UUIDs and the user's file on the SATA disk.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { ssh } from "./machines.ts";
import { freePort, keelIn } from "./processes.ts";
import { writeSeedLock } from "./seed-lock.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));
const scratch = mkdtempSync(path.join(os.tmpdir(), "keel-hardware-"));
const env = { ...process.env, XDG_CACHE_HOME: path.join(scratch, "cache"), XDG_STATE_HOME: path.join(scratch, "state"), KEEL_STORE: path.join(scratch, "store") };
const keel = keelIn(env);
const bootSeconds = 300;

/** What the project's hardware file says before the machine is probed: written by hand, as examples/seed's aethelred-hardware.ts was. */
const handWritten =
  `import { defineModule } from "keel";\n\n` +
  `export default defineModule({\n` +
  `  boot: { initrd: { availableKernelModules: ["virtio_pci", "virtio_blk"] } },\n` +
  `  fileSystems: {\n` +
  `    "/": { device: "/dev/disk/by-label/keel-root", fsType: "ext4" },\n` +
  `    "/boot": { device: "/dev/disk/by-label/ESP", fsType: "vfat" },\n` +
  `  },\n` +
  `});\n`;

describe("keel hardware-config on a VM keel booted: virtio, SATA and NVMe disks", () => {
  let dir = "";
  let key = "";
  let port = 0;
  let sshOpts = "";

  // As root with the test's key, which both the VM keel runs and the deployed generation let in (keel ssh's key is the VM variant's only).
  const guest = (script: string) => ssh(port, key, `set -e; ${script}`);
  const probe = (...more: string[]) => keel(["hardware-config", "--target-host", "root@127.0.0.1", "--ssh-opts", sshOpts, ...more], dir);
  const uuidOf = async (device: string) => (await guest(`blkid -p -s UUID -o value ${device}`)).trim();
  const entry = (text: string, mountPoint: string) => new RegExp(`^ {4}"${mountPoint.replaceAll("/", "\\/")}": \\{ device: "\\/dev\\/disk\\/by-uuid\\/([^"]+)", fsType: "([^"]+)"`, "m").exec(text)?.slice(1);

  before(async () => {
    port = await freePort();
    key = path.join(scratch, "key");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key]);
    sshOpts = `-p ${port} -i ${key} -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR`;
    dir = path.join(scratch, "project");
    mkdirSync(path.join(dir, "node_modules"), { recursive: true });
    symlinkSync(root, path.join(dir, "node_modules/keel"));
    writeFileSync(path.join(dir, "hardware.ts"), handWritten);
    const seed = (file: string) => JSON.stringify(path.join(root, "examples/seed", file));
    writeFileSync(
      path.join(dir, "keel.config.ts"),
      `import { defineModule, defineProject } from "keel";\n` +
        `import common from ${seed("common.ts")};\n` +
        `import { kernels } from ${seed("kernels.ts")};\n` +
        `import hardware from "./hardware";\n` +
        `const box = defineModule({ imports: [common, kernels.debian, hardware],\n` +
        `  boot: { kernelParams: ["console=ttyS0"] },\n` +
        // One vCPU: OVMF on this loaded 2-core host has hung after a reboot with two (see the deploy suite).
        `  virtualisation: { memorySize: 1024, cores: 1, graphics: false, forwardPorts: [{ host: { port: ${port} }, guest: { port: 22 } }],\n` +
        `    emptyDiskImages: [{ size: 256, interface: "sata" }, { size: 256, interface: "nvme" }] },\n` +
        `  users: { users: { root: { openssh: { authorizedKeys: { keys: [${JSON.stringify(readFileSync(`${key}.pub`, "utf8").trim())}] } } } } },\n` +
        `  deploy: { confirmTimeout: 120 },\n});\n` +
        `export default defineProject({ systems: { box } });\n`,
    );
    // box has the seed qemu's packages: its pin applies.
    writeSeedLock(dir, "box");
    const run = await keel(["run", "box", "--firmware", "uefi", "--detach", "--wait-ssh", "--accel", "tcg", "--timeout", String(bootSeconds)], dir);
    assert.equal(run.code, 0, run.stderr);
    console.log(`# keel run box --firmware uefi (built and booted): ${run.seconds.toFixed(1)} s`);
    await guest("mkfs.ext4 -q -F /dev/sda; mkfs.ext4 -q -F /dev/nvme0n1; mkdir -p /data /scratch; mount /dev/sda /data; mount /dev/nvme0n1 /scratch; echo kept > /data/marker; sync");
  });

  after(async () => {
    await keel(["vm", "stop", "box", "--force"], dir);
    rmSync(scratch, { recursive: true, force: true });
  });

  let probed = "";

  test("each file system by the UUID on it, the root's storage path in the initrd, the others' named; twice the same text", async () => {
    const first = await probe();
    assert.equal(first.code, 0, first.stderr);
    console.log(`# keel hardware-config over SSH: ${first.seconds.toFixed(1)} s\n${first.stdout.trimEnd().replace(/^/gm, "#   ")}`);
    assert.doesNotMatch(first.stderr, /not known/, "a VM keel booted hides nothing from the probe");
    const text = first.stdout;
    assert.match(text, /^\/\/ Laid out by keel: its root file system is the one mounted at \/keel\.$/m);
    assert.deepEqual(entry(text, "/"), [(await guest("findmnt -no UUID /keel")).trim(), "ext4"]);
    assert.deepEqual(entry(text, "/boot"), [(await guest("findmnt -no UUID /boot")).trim(), "vfat"]);
    assert.deepEqual(entry(text, "/data"), [await uuidOf("/dev/sda"), "ext4"]);
    assert.deepEqual(entry(text, "/scratch"), [await uuidOf("/dev/nvme0n1"), "ext4"]);
    assert.doesNotMatch(text, /"\/keel|\/generation/, "keel's own mounts are not the machine's file systems");
    // The root is on virtio: its modules go in the initrd; the SATA and NVMe disks are mounted later, their modules named.
    const initrd = /availableKernelModules: (\[[^\]]*\])/.exec(text)?.[1];
    assert.ok(initrd !== undefined, text);
    const modules = JSON.parse(initrd) as string[];
    assert.ok(modules.includes("virtio_blk") && modules.includes("virtio_pci"), initrd);
    assert.ok(!modules.includes("ahci") && !modules.includes("nvme"), initrd);
    assert.match(text, /^ {6}\/\/ After the root, the system loads (.*; )?ahci, sd_mod for \/data(; .*)?\.$/m);
    assert.match(text, /^ {6}\/\/ After the root, the system loads (.*; )?nvme for \/scratch(; .*)?\.$/m);
    assert.match(text, /^ {6}\S+: \{ useDHCP: true \}, \/\/ virtio_net$/m);
    assert.match(text, /a virtual machine \(qemu, systemd-detect-virt\)/);

    const second = await probe();
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stdout, text, "the same machine, the same bytes");
    probed = text;
  });

  test("a file system made again: its new UUID, not the one before", async () => {
    const earlier = entry(probed, "/data")?.[0];
    await guest("umount /data; mkfs.ext4 -q -F /dev/sda; mount /dev/sda /data; echo kept > /data/marker; sync");
    const again = await probe();
    assert.equal(again.code, 0, again.stderr);
    const now = await uuidOf("/dev/sda");
    console.log(`# /data made again: ${earlier} → ${now}`);
    assert.ok(earlier !== undefined, probed);
    assert.notEqual(now, earlier);
    assert.deepEqual(entry(again.stdout, "/data"), [now, "ext4"]);
    assert.ok(!again.stdout.includes(earlier), "the UUID before is gone");
    probed = again.stdout;
  });

  test("-o over the hand-written file: the diff first, then the file; it evaluates; deployed to the VM, it boots to SSH with every file system by those UUIDs", async () => {
    const written = await probe("-o", "hardware.ts");
    assert.equal(written.code, 0, written.stderr);
    assert.match(written.stdout, /^--- a\/hardware\.ts\n\+\+\+ b\/hardware\.ts\n/);
    assert.match(written.stdout, /^- {4}"\/": \{ device: "\/dev\/disk\/by-label\/keel-root", fsType: "ext4" \},$/m);
    assert.match(written.stdout, /^\+ {4}"\/": \{ device: "\/dev\/disk\/by-uuid\//m);
    assert.match(written.stderr, /wrote hardware\.ts/);
    assert.equal(readFileSync(path.join(dir, "hardware.ts"), "utf8"), probed);
    const again = await probe("-o", "hardware.ts", "--dry-run");
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /hardware\.ts already says what the machine has; left as it is/);

    // keel type-checks the project before it loads it: the generated module is typed keel.
    const evaluated = await keel(["eval", "box", "fileSystems", "--json"], dir);
    assert.equal(evaluated.code, 0, evaluated.stderr);
    const fileSystems = JSON.parse(evaluated.stdout) as Record<string, { device: string }>;
    assert.deepEqual(Object.keys(fileSystems).sort(), ["/", "/boot", "/data", "/scratch"]);

    const deployed = await keel(["deploy", "box", "--target-host", "root@127.0.0.1", "--ssh-opts", sshOpts, "--boot-timeout", String(bootSeconds)], dir);
    console.log(`# keel deploy box (the probed module): ${deployed.seconds.toFixed(1)} s\n${deployed.stderr.trimEnd().split("\n").filter((l) => !/copying generation \d+: /.test(l)).map((l) => `#   ${l}`).join("\n")}`);
    assert.equal(deployed.code, 0, deployed.stderr);
    const [cmdline = "", ...mounted] = (await guest("cat /proc/cmdline; for m in /keel /boot /data /scratch; do findmnt -no UUID $m; done; cat /data/marker")).trim().split("\n");
    assert.match(cmdline, /\bkeel\.generation=2\b/);
    assert.deepEqual(mounted, [...["/", "/boot", "/data", "/scratch"].map((m) => entry(probed, m)?.[0]), "kept"]);
  });
});
