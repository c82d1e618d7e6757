// What keel knows of a disk before writing it, from what lsblk, /dev/disk/by-id
// and /proc/swaps say. Fixtures in test/fixtures/disks/:
// - lsblk-loop-*.json, swaps-loop-busy.txt: captured on a test machine (util-linux
//   2.38.1, no udev) with a loop device over a GPT file (ESP, swap, ext4): idle,
//   and busy with the swap on and the ext4 mounted;
// - lsblk-workstation.json, by-id-workstation.txt, swaps-workstation.txt: a
//   workstation (NVMe with LUKS and LVM on it, a SATA SSD, a USB stick, a DVD
//   drive) written in the same format, since the test machine has no such disks.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { ProcessError, UsageError } from "../../src/errors.ts";
import { exec } from "../../src/host/exec.ts";
import {
  byIdArgv,
  byIdPaths,
  checkWritable,
  describeDisk,
  diskSize,
  disksOf,
  inspectDisk,
  lsblkArgv,
  parseByIdLinks,
  parseLsblk,
  parseSwaps,
  resolveDisk,
  swapsArgv,
  type Disk,
  type DiskInventory,
  type RunCommand,
} from "../../src/host/disks.ts";
import { Remote } from "../../src/host/ssh.ts";

// The type check holds both ways of running a command to the runner's shape: the inspection is the same here and over SSH.
const _here: RunCommand = (argv) => exec(argv);
const _overSsh: RunCommand = (argv) => new Remote({ target: "root@rescue" }).exec(argv);

const fixture = (name: string): string => readFileSync(new URL(`../fixtures/disks/${name}`, import.meta.url), "utf8");

const workstation: DiskInventory = {
  devices: parseLsblk(fixture("lsblk-workstation.json")),
  byId: parseByIdLinks(fixture("by-id-workstation.txt")),
  swaps: parseSwaps(fixture("swaps-workstation.txt")),
};
const loopIdle: DiskInventory = { devices: parseLsblk(fixture("lsblk-loop-idle.json")), byId: [], swaps: [] };
const loopBusy: DiskInventory = { devices: parseLsblk(fixture("lsblk-loop-busy.json")), byId: [], swaps: parseSwaps(fixture("swaps-loop-busy.txt")) };

const diskNamed = (inventory: DiskInventory, path: string): Disk => {
  const disk = disksOf(inventory).find((d) => d.path === path);
  assert.ok(disk, `${path} is a disk of the inventory`);
  return disk;
};

/** The message of the UsageError that `body` throws. */
function usageMessage(body: () => unknown): string {
  try {
    body();
  } catch (error) {
    assert.ok(error instanceof UsageError, `a UsageError, not ${String(error)}`);
    return error.message;
  }
  assert.fail("no error was thrown");
}

describe("parsing lsblk", () => {
  it("a loop device with its partitions, sizes in bytes, and the mounted root disk", () => {
    const [loop, zram, vda] = loopIdle.devices;
    assert.deepEqual(
      { path: loop?.path, type: loop?.type, bytes: loop?.bytes, model: loop?.model, readOnly: loop?.readOnly },
      { path: "/dev/loop0", type: "loop", bytes: 64 * 1024 * 1024, model: null, readOnly: false },
    );
    assert.deepEqual(
      loop?.children.map((c) => [c.path, c.type, c.bytes, c.mountpoints]),
      [
        ["/dev/loop0p1", "part", 16 * 1024 * 1024, []],
        ["/dev/loop0p2", "part", 8 * 1024 * 1024, []],
        ["/dev/loop0p3", "part", 38 * 1024 * 1024, []],
      ],
    );
    assert.equal(zram?.bytes, 0);
    assert.deepEqual(vda?.mountpoints, ["/"]);
  });

  it("devices on devices: LUKS on a partition, LVM volumes in it, their mount points and [SWAP]", () => {
    const nvme = workstation.devices.find((d) => d.path === "/dev/nvme0n1");
    const crypt = nvme?.children[1]?.children[0];
    assert.equal(crypt?.kname, "dm-0");
    assert.deepEqual(crypt?.children.map((c) => [c.path, c.kname, c.type, c.mountpoints]), [
      ["/dev/mapper/vg-root", "dm-1", "lvm", ["/"]],
      ["/dev/mapper/vg-swap", "dm-2", "lvm", ["[SWAP]"]],
    ]);
  });

  it("an older lsblk's strings for SIZE and RO, and padded models", () => {
    const [disk] = parseLsblk(
      JSON.stringify({
        blockdevices: [{ path: "/dev/sdc", kname: "sdc", type: "disk", size: "8004304896", model: "Flash Disk      ", serial: "", mountpoints: [null], fstype: null, ro: "1" }],
      }),
    );
    assert.deepEqual([disk?.bytes, disk?.model, disk?.serial, disk?.readOnly], [8004304896, "Flash Disk", null, true]);
  });

  it("output without the columns keel asks for names what is missing", () => {
    assert.throws(() => parseLsblk(JSON.stringify({ blockdevices: [{ name: "sda", kname: "sda", type: "disk", size: 1 }] })), /^Error: blockdevices\.0\.path: /);
    assert.throws(() => parseLsblk("lsblk: unknown column: MOUNTPOINTS"), /^Error: it is not JSON/);
  });
});

describe("/proc/swaps and /dev/disk/by-id", () => {
  it("/proc/swaps: the devices and files, with \\040 read as a space", () => {
    assert.deepEqual(parseSwaps(fixture("swaps-loop-busy.txt")), ["/dev/loop0p2"]);
    assert.deepEqual(parseSwaps(fixture("swaps-workstation.txt")), ["/dev/dm-2", "/swap file"]);
    assert.deepEqual(parseSwaps("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"), []);
  });

  it("a disk's by-id names: its own links only (not its partitions'), the most stable first", () => {
    assert.deepEqual(byIdPaths("nvme0n1", workstation.byId), [
      "/dev/disk/by-id/nvme-eui.0025385b91b2c3d4",
      "/dev/disk/by-id/nvme-Samsung_SSD_970_EVO_Plus_1TB_S4EWNX0R123456A",
      "/dev/disk/by-id/nvme-Samsung_SSD_970_EVO_Plus_1TB_S4EWNX0R123456A_1",
    ]);
    assert.deepEqual(byIdPaths("sda", workstation.byId), ["/dev/disk/by-id/wwn-0x5002538e40a1b2c3", "/dev/disk/by-id/ata-Samsung_SSD_860_EVO_500GB_S3Z2NB0K123456X"]);
    assert.deepEqual(byIdPaths("sdb1", workstation.byId), ["/dev/disk/by-id/usb-SanDisk_Ultra_4C530001230516105263-0:0-part1"]);
  });

  it("the order does not depend on the order find lists the links in", () => {
    const reversed = [...workstation.byId].reverse();
    for (const kname of ["nvme0n1", "sda", "sdb", "dm-1"]) assert.deepEqual(byIdPaths(kname, reversed), byIdPaths(kname, workstation.byId));
  });

  it("a machine without udev has no links (find prints nothing)", () => {
    assert.deepEqual(parseByIdLinks(""), []);
  });
});

describe("what uses a disk", () => {
  it("nothing uses an idle disk", () => {
    assert.deepEqual(diskNamed(loopIdle, "/dev/loop0").inUse, []);
    assert.deepEqual(diskNamed(workstation, "/dev/sdb").inUse, []);
  });

  it("a mounted partition and a swap partition, each named once (lsblk's [SWAP] and /proc/swaps agree)", () => {
    assert.deepEqual(diskNamed(loopBusy, "/dev/loop0").inUse, ["partition /dev/loop0p2 is swap", "partition /dev/loop0p3 is mounted on /tmp/keel-flash-fx.OhGN/mnt"]);
  });

  it("swap that only /proc/swaps lists", () => {
    assert.deepEqual(diskNamed({ ...loopIdle, swaps: ["/dev/loop0p2"] }, "/dev/loop0").inUse, ["partition /dev/loop0p2 is swap"]);
  });

  it("a disk that is itself mounted", () => {
    assert.deepEqual(diskNamed(loopIdle, "/dev/vda").inUse, ["/dev/vda is mounted on /"]);
  });

  it("LUKS and LVM on a partition: the device on it, and what is mounted or swap further up", () => {
    assert.deepEqual(diskNamed(workstation, "/dev/nvme0n1").inUse, [
      "partition /dev/nvme0n1p1 is mounted on /boot/efi",
      "crypt device /dev/mapper/cryptroot is on partition /dev/nvme0n1p2",
      "lvm device /dev/mapper/vg-root is mounted on /",
      "lvm device /dev/mapper/vg-swap is swap",
    ]);
  });

  it("an optical drive is not among the disks", () => {
    assert.deepEqual(
      disksOf(workstation).map((d) => d.path),
      ["/dev/sda", "/dev/sdb", "/dev/nvme0n1"],
    );
  });
});

describe("describing a disk before it is written", () => {
  it("model, size in GB and GiB, serial, every by-id name and the partitions", () => {
    assert.equal(
      describeDisk(diskNamed(workstation, "/dev/sdb")),
      [
        "  disk    /dev/sdb",
        "  model   Ultra",
        "  size    32.0 GB (29.8 GiB)",
        "  serial  4C530001230516105263",
        "  by-id   /dev/disk/by-id/usb-SanDisk_Ultra_4C530001230516105263-0:0",
        "  holds   /dev/sdb1 (vfat, 32.0 GB)",
      ].join("\n"),
    );
  });

  it("a disk that reports no model or serial and has no by-id link says so", () => {
    assert.equal(
      describeDisk(diskNamed(loopIdle, "/dev/loop0")),
      [
        "  disk    /dev/loop0",
        "  model   (the drive reports none)",
        "  size    67.1 MB (64.0 MiB)",
        "  serial  (the drive reports none)",
        "  by-id   (none: this machine has no /dev/disk/by-id link to it)",
        "  holds   /dev/loop0p1 (16.8 MB), /dev/loop0p2 (8.4 MB), /dev/loop0p3 (39.8 MB)",
      ].join("\n"),
    );
  });

  it("sizes as a drive's label says them and as tools show them", () => {
    assert.equal(diskSize(1000204886016), "1.0 TB (931.5 GiB)");
    assert.equal(diskSize(512), "512 bytes (512 bytes)");
  });
});

describe("the disk a user's argument names", () => {
  it("/dev/sdb, its by-id link (resolved) and the kernel's name give the same disk", () => {
    const byPath = resolveDisk("/dev/sdb", "/dev/sdb", workstation);
    assert.deepEqual(resolveDisk("/dev/disk/by-id/usb-SanDisk_Ultra_4C530001230516105263-0:0", "/dev/sdb", workstation), byPath);
    assert.equal(byPath.serial, "4C530001230516105263");
  });

  it("a partition is refused, naming the argument and the whole disk", () => {
    assert.equal(
      usageMessage(() => resolveDisk("/dev/disk/by-id/wwn-0x5002538e40a1b2c3-part1", "/dev/sda1", workstation)),
      "`/dev/disk/by-id/wwn-0x5002538e40a1b2c3-part1' (/dev/sda1) is a partition of /dev/sda; name the whole disk.\n" +
        "Fix: name /dev/sda or /dev/disk/by-id/wwn-0x5002538e40a1b2c3 (everything on the disk is written, not one partition).",
    );
    assert.equal(
      usageMessage(() => resolveDisk("/dev/loop0p3", "/dev/loop0p3", loopIdle)),
      "`/dev/loop0p3' is a partition of /dev/loop0; name the whole disk.\nFix: name /dev/loop0 (everything on the disk is written, not one partition).",
    );
  });

  it("an LVM volume, by its /dev/mapper name or the kernel's, is not a disk", () => {
    const message = "is an LVM volume on /dev/nvme0n1, not a disk.\nFix: name the whole disk, /dev/nvme0n1 or /dev/disk/by-id/nvme-eui.0025385b91b2c3d4, once nothing uses it.";
    assert.equal(usageMessage(() => resolveDisk("/dev/mapper/vg-root", "/dev/mapper/vg-root", workstation)), `\`/dev/mapper/vg-root' ${message}`);
    assert.equal(usageMessage(() => resolveDisk("/dev/mapper/vg-root", "/dev/dm-1", workstation)), `\`/dev/mapper/vg-root' (/dev/dm-1) ${message}`);
  });

  it("an optical drive is refused", () => {
    assert.match(usageMessage(() => resolveDisk("/dev/sr0", "/dev/sr0", workstation)), /^`\/dev\/sr0' is an optical drive, not a disk keel can write\.\n/);
  });

  it("a missing device is refused, listing the disks there are (not empty ones)", () => {
    assert.equal(
      usageMessage(() => resolveDisk("/dev/sdz", "/dev/sdz", loopIdle, " on root@rescue")),
      "There is no disk `/dev/sdz' on root@rescue.\nFix: name one of the disks lsblk lists on root@rescue: /dev/loop0 (67.1 MB), /dev/vda (274.9 GB).",
    );
  });
});

describe("a disk keel will not write", () => {
  it("one in use, with each reason", () => {
    assert.equal(
      usageMessage(() => checkWritable(diskNamed(loopBusy, "/dev/loop0"))),
      "keel will not write /dev/loop0: it is in use.\n" +
        "- partition /dev/loop0p2 is swap\n" +
        "- partition /dev/loop0p3 is mounted on /tmp/keel-flash-fx.OhGN/mnt\n" +
        "Fix: unmount its file systems and turn off its swap (umount, swapoff; for LVM, LUKS or RAID on it: vgchange -an, cryptsetup close, mdadm --stop), or name another disk.",
    );
  });

  it("a read-only one", () => {
    assert.match(usageMessage(() => checkWritable({ ...diskNamed(loopIdle, "/dev/loop0"), readOnly: true })), /^\/dev\/loop0 is read-only\.\nFix: /);
  });

  it("an idle one passes", () => {
    checkWritable(diskNamed(loopIdle, "/dev/loop0"));
  });
});

describe("inspecting a disk through a runner (here or over SSH)", () => {
  /** A runner that answers keel's four commands from the fixtures and records what it was asked. */
  const runner = (lsblk: string, asked: string[][]) => (argv: readonly string[]) => {
    asked.push([...argv]);
    const answers = new Map<string, string>([
      [lsblkArgv.join(" "), lsblk],
      [byIdArgv.join(" "), fixture("by-id-workstation.txt")],
      [swapsArgv.join(" "), fixture("swaps-workstation.txt")],
      ["realpath --canonicalize-missing -- /dev/disk/by-id/wwn-0x5002538e40a1b2c3", "/dev/sda\n"],
    ]);
    const stdout = answers.get(argv.join(" "));
    return stdout === undefined ? Promise.reject(new Error(`unexpected command ${argv.join(" ")}`)) : Promise.resolve({ stdout });
  };

  it("resolves a by-id name to its disk with everything known of it", async () => {
    const asked: string[][] = [];
    const disk = await inspectDisk(runner(fixture("lsblk-workstation.json"), asked), "/dev/disk/by-id/wwn-0x5002538e40a1b2c3");
    assert.deepEqual(disk, {
      path: "/dev/sda",
      byId: ["/dev/disk/by-id/wwn-0x5002538e40a1b2c3", "/dev/disk/by-id/ata-Samsung_SSD_860_EVO_500GB_S3Z2NB0K123456X"],
      model: "Samsung SSD 860 EVO 500GB",
      serial: "S3Z2NB0K123456X",
      bytes: 500107862016,
      readOnly: false,
      inUse: [],
      partitions: [{ path: "/dev/sda1", bytes: 500106813440, fstype: "ext4" }],
    });
    assert.equal(asked.length, 4);
  });

  it("lsblk output keel cannot read is a ProcessError naming the command", async () => {
    await assert.rejects(inspectDisk(runner("{}", []), "/dev/disk/by-id/wwn-0x5002538e40a1b2c3"), (error: unknown) => {
      assert.ok(error instanceof ProcessError);
      assert.match(error.message, /^"lsblk --json --bytes --output PATH,NAME,KNAME,TYPE,SIZE,MODEL,SERIAL,MOUNTPOINTS,PKNAME,FSTYPE,RO" printed what keel cannot read: blockdevices: .*\nFix: keel needs lsblk from util-linux 2\.37 or newer/);
      return true;
    });
  });
});
