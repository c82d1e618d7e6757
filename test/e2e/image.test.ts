// keel image, keel run --firmware uefi and keel install end to end, under TCG
// with real OVMF: a disk image of the seed's qemu system (its root and ESP
// named by UUID in the config) is a GPT disk with those UUIDs; its qcow2 at
// 6 GiB boots under plain QEMU and OVMF to SSH with root grown to the disk;
// keel run boots the same layout; keel install from a rescue VM onto its blank
// NVMe disk gives a disk that boots alone to the built kernel. One project
// holds the three systems so that their builds are shared: box is vmtest with
// NVMe in stage 1 and vmtest's host name, so the two share one root
// filesystem. Every VM is stopped by the test or, at the latest, in after().
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { attachments, boot as bootMachine, ssh, stop, waitForSsh as waitForMachine, type Machine } from "./machines.ts";
import { freePort, keelIn } from "./processes.ts";
import { writeSeedLock } from "./seed-lock.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));
const scratch = mkdtempSync(path.join(os.tmpdir(), "keel-image-"));
const store = path.join(scratch, "store");
const env = { ...process.env, XDG_CACHE_HOME: path.join(scratch, "cache"), XDG_STATE_HOME: path.join(scratch, "state"), KEEL_STORE: store };
const keel = keelIn(env);
const mib = 1024 * 1024;
/** The file systems' identifiers vmtest's config names, as a hardware module would. */
const rootUuid = "2f0c8e4a-6b1d-4c3e-9a5f-7d8e9f0a1b2c";
const espId = "ABCD-1234";
/** The rescue VM's blank NVMe disk, as its udev names it (QEMU's model, keel's serial keel-empty0). */
const blankDisk = "/dev/disk/by-id/nvme-QEMU_NVMe_Ctrl_keel-empty0";
const bootSeconds = 300;

/** Where the store keeps `system`'s `step` (built: the test fails otherwise). */
async function stepPath(cwd: string, system: string, step: string): Promise<string> {
  const plan = await keel(["build", system, step, "--dry-run", "--json"], cwd);
  assert.equal(plan.code, 0, plan.stderr);
  const found = (JSON.parse(plan.stdout) as { step: string; path: string; cached: boolean }[]).find((s) => s.step === step);
  assert.ok(found?.cached, `${system}'s ${step} is in the store: ${plan.stdout}`);
  return found.path;
}

/** The partitions of a GPT disk image, as sfdisk reads them. */
function partitions(image: string): { readonly label: string; readonly partitions: readonly { readonly start: number; readonly size: number; readonly type: string; readonly name: string }[] } {
  return (JSON.parse(execFileSync("sfdisk", ["--json", image], { encoding: "utf8" })) as { partitiontable: ReturnType<typeof partitions> }).partitiontable;
}

/** What blkid finds at `offset` bytes into `image`: TYPE, UUID, LABEL. */
function probe(image: string, offset: number): Record<string, string> {
  const out = execFileSync("blkid", ["-p", "-O", String(offset), "-o", "export", image], { encoding: "utf8" });
  return Object.fromEntries(out.trim().split("\n").map((line) => line.split("=", 2) as [string, string]));
}

const machines: Machine[] = [];

function boot(name: string, disk: string, device: keyof typeof attachments, port: number): Machine {
  const machine = bootMachine(scratch, name, disk, device, port);
  machines.push(machine);
  return machine;
}

const waitForSsh = (machine: Machine, key: string, started: number) => waitForMachine(machine, key, started, bootSeconds);

describe("keel image, keel run --firmware uefi, keel install", () => {
  let dir = "";
  let userKey = "";
  let vmPort = 0;
  let rescuePort = 0;
  const qcow2 = path.join(scratch, "vmtest.qcow2");

  before(async () => {
    vmPort = await freePort();
    rescuePort = await freePort();
    userKey = path.join(scratch, "user_key");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", userKey]);
    const key = readFileSync(`${userKey}.pub`, "utf8").trim();
    dir = path.join(scratch, "machines");
    mkdirSync(path.join(dir, "node_modules"), { recursive: true });
    symlinkSync(root, path.join(dir, "node_modules/keel"));
    const rootKey = `users: { users: { root: { openssh: { authorizedKeys: { keys: [${JSON.stringify(key)}] } } } } }`;
    writeFileSync(
      path.join(dir, "keel.config.ts"),
      `import { defineModule, defineProject, mkForce } from "keel";\n` +
        `import qemu from ${JSON.stringify(path.join(root, "examples/seed/qemu.ts"))};\n` +
        `const vmtest = defineModule({ imports: [qemu],\n` +
        `  fileSystems: { "/": { device: mkForce("/dev/disk/by-uuid/${rootUuid}") }, "/boot": { device: "/dev/disk/by-uuid/${espId}", fsType: "vfat" } },\n` +
        `  virtualisation: { forwardPorts: mkForce([{ host: { port: ${vmPort} }, guest: { port: 22 } }]) },\n` +
        `  ${rootKey},\n});\n` +
        `const box = defineModule({ imports: [vmtest], networking: { hostName: "vmtest" }, boot: { initrd: { availableKernelModules: ["nvme"] } } });\n` +
        `const rescue = defineModule({ imports: [qemu], packages: ["fdisk", "dosfstools"],\n` +
        `  virtualisation: { forwardPorts: mkForce([{ host: { port: ${rescuePort} }, guest: { port: 22 } }]), emptyDiskImages: [{ size: 3072, interface: "nvme" }] },\n` +
        `  ${rootKey},\n});\n` +
        `export default defineProject({ systems: { vmtest, box, rescue } });\n`,
    );
    // vmtest and box have the seed qemu's packages: its pin applies. The rescue's are resolved by keel lock.
    writeSeedLock(dir, "vmtest");
    const lockFile = path.join(dir, "keel.lock");
    const lock = JSON.parse(readFileSync(lockFile, "utf8")) as { systems: Record<string, unknown> };
    lock.systems.box = lock.systems.vmtest;
    writeFileSync(lockFile, `${JSON.stringify(lock, null, 2)}\n`);
    const locked = await keel(["lock"], dir);
    assert.equal(locked.code, 0, locked.stderr);
    assert.match(locked.stdout, /rescue/);
    assert.doesNotMatch(locked.stdout, /^(vmtest|box)\b/m, "the seed's pin is kept for vmtest and box");
  });

  after(async () => {
    for (const system of ["vmtest", "rescue"]) await keel(["vm", "stop", system, "--force"], dir);
    for (const machine of machines) await stop(machine);
    rmSync(scratch, { recursive: true, force: true });
  });

  test("keel image: a qcow2 at --size; a --size below the content is refused with what it needs; a raw GPT disk with the UUIDs the config names", async () => {
    const made = await keel(["image", "vmtest", "--format", "qcow2", "--size", "6G", "-o", qcow2], dir);
    assert.equal(made.code, 0, made.stderr);
    console.log(`# keel image --format qcow2 --size 6G: ${made.seconds.toFixed(1)} s; ${made.stderr.trim().split("\n").slice(-2).join(" | ")}`);
    const info = JSON.parse(execFileSync("qemu-img", ["info", "--output=json", qcow2], { encoding: "utf8" })) as { format: string; "virtual-size": number };
    assert.deepEqual([info.format, info["virtual-size"]], ["qcow2", 6 * 1024 * mib]);

    const disk = JSON.parse(readFileSync(path.join(await stepPath(dir, "vmtest", "disk"), "disk.json"), "utf8")) as { bytes: number };
    const needed = Math.ceil(disk.bytes / mib);
    const small = await keel(["image", "vmtest", "--size", "1G", "-o", path.join(scratch, "small.img")], dir);
    assert.equal(small.code, 2, small.stderr);
    assert.match(small.stderr, new RegExp(`--size 1G is smaller than vmtest's content: the disk needs at least .* \\(${needed} MiB\\)\\.\nFix: give --size ${needed}M or more, or leave --size out\\.`));
    assert.deepEqual(readdirSync(scratch).filter((name) => name.startsWith("small.img")), [], "nothing is left of the refused image");

    const raw = path.join(scratch, "vmtest.img");
    const rawMade = await keel(["image", "vmtest", "-o", raw], dir);
    assert.equal(rawMade.code, 0, rawMade.stderr);
    assert.match(rawMade.stderr, new RegExp(`root: ext4 UUID ${rootUuid} \\(label keel-root\\); ESP: vfat ${espId}\\.`));
    const table = partitions(raw);
    assert.equal(table.label, "gpt");
    const [esp, rootPartition] = table.partitions;
    assert.ok(esp && rootPartition, `two partitions: ${JSON.stringify(table.partitions)}`);
    assert.deepEqual([esp.type, esp.name, rootPartition.type], ["C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "ESP", "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"]);
    const rootProbe = probe(raw, rootPartition.start * 512);
    assert.deepEqual([rootProbe.TYPE, rootProbe.UUID, rootProbe.LABEL], ["ext4", rootUuid, "keel-root"]);
    const espProbe = probe(raw, esp.start * 512);
    assert.deepEqual([espProbe.TYPE, espProbe.UUID], ["vfat", espId]);
    const mtools = { ...env, MTOOLS_SKIP_CHECK: "1" };
    assert.match(execFileSync("mdir", ["-i", `${raw}@@${esp.start * 512}`, "::"], { encoding: "utf8", env: mtools }), new RegExp(`Volume Serial Number is ${espId}`));
    const entry = execFileSync("mtype", ["-i", `${raw}@@${esp.start * 512}`, "::/loader/entries/keel-1.conf"], { encoding: "utf8", env: mtools });
    assert.match(entry, new RegExp(`^options root=UUID=${rootUuid} rootfstype=ext4 keel\\.generation=1 `, "m"), "the boot entry finds the root by the config's UUID");
  });

  test("the 6 GiB qcow2 boots under plain QEMU and OVMF to SSH; root has grown to the disk; generation 1 is what booted", async () => {
    const started = performance.now();
    const machine = boot("qcow2", qcow2, "virtio", await freePort());
    try {
      console.log(`# the qcow2 under OVMF answers SSH after ${(await waitForSsh(machine, userKey, started)).toFixed(1)} s`);
      // keel-grow-root is part of the boot: once the boot is done, the root has its size.
      const state = (await ssh(machine.port, userKey, "systemctl is-system-running --wait || true")).trim();
      const look = await ssh(machine.port, userKey, "df -B1M --output=size /keel | tail -1; cat /proc/cmdline; findmnt -no FSTYPE,UUID /boot");
      const [size = "", cmdline = "", bootMount = ""] = look.trim().split("\n").map((line) => line.trim());
      console.log(`# booted (${state}): /keel ${size} MiB; /proc/cmdline ${cmdline}; /boot ${bootMount}`);
      assert.ok(Number(size) > 5000, `/keel is ${size} MiB after the boot (${state}): it fills the 6 GiB disk`);
      assert.match(cmdline, new RegExp(`\\broot=UUID=${rootUuid}\\b.*\\bkeel\\.generation=1\\b`));
      assert.equal(bootMount.replace(/\s+/g, " "), `vfat ${espId}`, "fstab's /boot by UUID finds the ESP");
    } finally {
      await stop(machine);
    }
  });

  test("keel image --format iso: a hybrid ISO that boots under OVMF from a CD and from a USB stick to SSH, the generation read from it, the state in memory", async () => {
    const iso = path.join(scratch, "vmtest.iso");
    const refused = await keel(["image", "vmtest", "--format", "iso", "--size", "8G", "-o", iso], dir);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /--size is a disk's size; an ISO is as large as its content\./);
    const made = await keel(["image", "vmtest", "--format", "iso", "-o", iso], dir);
    assert.equal(made.code, 0, made.stderr);
    const label = /hybrid ISO \(label (KEEL_[0-9A-F]+)\)/.exec(made.stderr)?.[1] ?? "";
    console.log(`# keel image --format iso: ${made.seconds.toFixed(1)} s; ${made.stderr.trim().split("\n").slice(-2).join(" | ")}`);
    assert.deepEqual([probe(iso, 0).TYPE, probe(iso, 0).LABEL], ["iso9660", label]);
    const [, esp] = partitions(iso).partitions;
    assert.equal(esp?.type, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "a USB stick's firmware finds the ESP in the GPT");
    for (const device of ["cdrom", "usb"] as const) {
      const started = performance.now();
      const machine = boot(`iso-${device}`, iso, device, await freePort());
      try {
        console.log(`# the ISO as ${device} under OVMF answers SSH after ${(await waitForSsh(machine, userKey, started)).toFixed(1)} s`);
        const state = (await ssh(machine.port, userKey, "systemctl is-system-running --wait || true")).trim();
        const look = await ssh(machine.port, userKey, "findmnt -no FSTYPE /; findmnt -no FSTYPE /keel; findmnt -no FSTYPE /keel/generation; findmnt -no FSTYPE,LABEL /keel/medium; cat /proc/cmdline");
        console.log(`# booted from ${device} (${state}): ${look.trim().replace(/\s*\n/g, " | ")}`);
        assert.equal(state, "running", `no unit failed booting from ${device}`);
        const [rootType, keelType, generationType, medium, cmdline] = look.trim().split("\n").map((line) => line.trim().replace(/\s+/g, " "));
        assert.deepEqual([rootType, keelType, generationType, medium], ["overlay", "tmpfs", "squashfs", `iso9660 ${label}`]);
        assert.match(cmdline ?? "", new RegExp(`\\broot=LABEL=${label} rootfstype=iso9660 keel\\.loop=/keel/generation\\.squashfs keel\\.state=tmpfs keel\\.generation=1 fstab=no\\b`), "and no fstab: its file systems are the disk's");
      } finally {
        await stop(machine);
      }
    }
  });

  test("keel run --firmware uefi boots the disk image: / is the generation under its writable layer", async () => {
    const run = await keel(["run", "vmtest", "--firmware", "uefi", "--detach", "--wait-ssh", "--accel", "tcg", "--timeout", String(bootSeconds)], dir);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, new RegExp(`answers SSH on 127\\.0\\.0\\.1:${vmPort} after [\\d.]+ s`));
    console.log(`# keel run --firmware uefi --detach --wait-ssh: ${run.seconds.toFixed(1)} s`);
    const fsType = await keel(["ssh", "vmtest", "--", "findmnt", "-no", "FSTYPE", "/"], dir);
    assert.equal(fsType.code, 0, fsType.stderr);
    assert.equal(fsType.stdout, "overlay\n");
    const stopped = await keel(["vm", "stop", "vmtest"], dir);
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.match(stopped.stderr, /stopped \((powered off|quit)\)/);
  });

  test("keel install from a rescue VM onto its blank NVMe disk: refused without --yes, then installed; the disk boots alone to the built kernel", async () => {
    const rescue = await keel(["run", "rescue", "--detach", "--wait-ssh", "--accel", "tcg", "--timeout", String(bootSeconds)], dir);
    assert.equal(rescue.code, 0, rescue.stderr);
    console.log(`# keel run rescue (built and booted): ${rescue.seconds.toFixed(1)} s`);
    const knownHosts = path.join(scratch, "rescue_known_hosts");
    const install = (...more: string[]) =>
      keel(
        ["install", "box", "--target-host", "root@127.0.0.1", `--ssh-opts=-p ${rescuePort} -i ${userKey} -o IdentitiesOnly=yes -o UserKnownHostsFile=${knownHosts} -o StrictHostKeyChecking=accept-new`, "--disk", blankDisk, ...more],
        dir,
      );

    // Without a terminal and without --yes: the disk is shown, nothing written.
    const refused = await install();
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /^error: keel install: installing erases \S+ on .*, and there is no terminal to confirm on:\n/);
    assert.match(refused.stderr, new RegExp(`${blankDisk}`), "the disk is shown by its by-id name");
    assert.match(refused.stderr, /\nFix: check that this is the disk, then run again with --yes\.\n$/);
    const table = await keel(["ssh", "rescue", "--", "lsblk", "-no", "PTTYPE", blankDisk], dir);
    assert.equal(table.code, 0, table.stderr);
    assert.equal(table.stdout.trim(), "", "the disk is still blank: no partition table");

    const installed = await install("--yes");
    assert.equal(installed.code, 0, installed.stderr);
    const said = installed.stderr.trimEnd().split("\n").filter((line) => !line.includes("copying the generation: "));
    console.log(`# keel install --yes: ${installed.seconds.toFixed(1)} s\n${said.map((line) => `#   ${line}`).join("\n")}`);
    assert.match(installed.stderr, /^keel install: verified: \d+ files of generation 1, \d+ files on the ESP$/m);
    assert.match(installed.stderr, /^keel install: rebooting .* into box\.$/m);
    const stopped = await keel(["vm", "stop", "rescue", "--force"], dir);
    assert.equal(stopped.code, 0, stopped.stderr);

    // The image box's install is compared with.
    const diskBuilt = await keel(["build", "box", "disk"], dir);
    assert.equal(diskBuilt.code, 0, diskBuilt.stderr);
    const image = JSON.parse(readFileSync(path.join(await stepPath(dir, "box", "disk"), "disk.json"), "utf8")) as { bytes: number; geometry: { rootSectors: number } };

    // The rescue's blank disk, alone, as the machine's only disk.
    const [projectId = ""] = readdirSync(path.join(scratch, "state/keel/projects"));
    const blank = path.join(scratch, "state/keel/projects", projectId, "vms/rescue/empty-0.qcow2");
    const started = performance.now();
    const machine = boot("installed", blank, "nvme", await freePort());
    try {
      console.log(`# the installed disk under OVMF answers SSH after ${(await waitForSsh(machine, userKey, started)).toFixed(1)} s`);
      await ssh(machine.port, userKey, "systemctl is-system-running --wait || true");
      const [release = "", keelUuid = "", keelSize = ""] = (await ssh(machine.port, userKey, "uname -r; findmnt -no UUID /keel; df -B1M --output=size /keel | tail -1")).trim().split("\n").map((line) => line.trim());
      // The release keel built for box (its boot.json); the rescue runs the same Debian kernel, but this is what box's build says.
      const built = JSON.parse(readFileSync(path.join(await stepPath(dir, "box", "system"), "boot.json"), "utf8")) as { release: string };
      console.log(`# installed: uname -r ${release} (built ${built.release}); /keel UUID ${keelUuid}, ${keelSize} MiB; box's image ${(image.bytes / mib).toFixed(0)} MiB`);
      assert.equal(release, built.release);
      assert.equal(keelUuid, rootUuid, "the installed root has the UUID the config names");
      // The disk is not the image's size: the install partitions the whole disk, the image is as small as its content.
      const info = JSON.parse(execFileSync("qemu-img", ["info", "--output=json", "-U", blank], { encoding: "utf8" })) as { "virtual-size": number };
      assert.equal(info["virtual-size"], 3072 * mib);
      assert.notEqual(info["virtual-size"], image.bytes);
      assert.ok(Number(keelSize) > (image.geometry.rootSectors * 512) / mib, `the installed root (${keelSize} MiB) is larger than the image's (${(image.geometry.rootSectors * 512) / mib} MiB)`);
    } finally {
      await stop(machine);
    }
  });
});
