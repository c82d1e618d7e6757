// keel hardware-config's pure parts: the probe's output read back, and the
// module written from it (what it names, what it says it could not know,
// the same text for the same machine).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { hardwareModule } from "../../src/hardware/generate.ts";
import { parseMountinfo, parseProbe } from "../../src/hardware/probe.ts";

/** A QEMU guest as the probe script prints it: root and ESP on virtio, a SATA (ahci) and an NVMe disk, swap on virtio. */
const vm = [
  "@@ kernel",
  "6.1.0-28-amd64 x86_64",
  "@@ firmware",
  "uefi",
  "@@ virt",
  "vm kvm",
  "container none",
  "@@ cpu",
  "vendor_id\t: GenuineIntel",
  "flags\t\t: fpu vme de pse tsc msr pae vmx hypervisor",
  "@@ mountinfo",
  "22 28 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw",
  "28 1 254:2 / / rw,relatime shared:1 - ext4 /dev/vda2 rw,discard",
  "30 28 254:1 / /boot rw,relatime shared:5 - vfat /dev/vda1 rw,fmask=0077,dmask=0077,codepage=437,iocharset=ascii,shortname=mixed,errors=remount-ro",
  "31 28 8:1 / /srv/data rw,noatime shared:6 - ext4 /dev/sda1 rw",
  "32 28 259:1 / /scratch rw,relatime shared:7 - xfs /dev/nvme0n1 rw,attr2,inode64",
  "33 28 8:1 /www /var/www rw,relatime shared:6 - ext4 /dev/sda1 rw",
  "34 28 0:30 / /tmp rw,nosuid,nodev shared:8 - tmpfs tmpfs rw",
  "@@ swaps",
  "/dev/vda3                               partition\t1048572\t0\t-2",
  "@@ block /dev/nvme0n1",
  "name nvme0n1",
  "blkid UUID=5d1c7f3e-0b7a-4c1e-9d55-0e6f2b0a9c11",
  "blkid TYPE=xfs",
  "node pci:v00001B36d00000010sv00001AF4sd00001100bc01sc08i02 nvme",
  "@@ block /dev/sda1",
  "name sda1",
  "blkid UUID=0e3f4c1a-77b2-4f0e-8a9b-3c2d1e0f5a6b",
  "blkid TYPE=ext4",
  "node scsi:t-0x00 sd",
  "node pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01 ahci",
  "@@ block /dev/vda1",
  "name vda1",
  "blkid UUID=3A1B-7C2D",
  "blkid TYPE=vfat",
  "node virtio:d00000002v00001AF4 virtio_blk",
  "node pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00 virtio-pci",
  "@@ block /dev/vda2",
  "name vda2",
  "blkid UUID=5c1e4f0a-8a53-4d4e-9a7b-2f3c6d1e0b9a",
  "blkid TYPE=ext4",
  "node virtio:d00000002v00001AF4 virtio_blk",
  "node pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00 virtio-pci",
  "@@ block /dev/vda3",
  "name vda3",
  "blkid UUID=9f0e1d2c-3b4a-5968-7766-554433221100",
  "blkid TYPE=swap",
  "node virtio:d00000002v00001AF4 virtio_blk",
  "node pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00 virtio-pci",
  "@@ keyboards",
  "@@ net",
  "enp0s3 virtio_net",
  "@@ aliases",
  "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00 virtio_pci ",
  "pci:v00001B36d00000010sv00001AF4sd00001100bc01sc08i02 nvme ",
  "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01 ahci ",
  "scsi:t-0x00 sd_mod ",
  "virtio:d00000002v00001AF4 virtio_blk ",
  "",
].join("\n");

describe("keel hardware-config", () => {
  it("reads mountinfo's fields, escapes and both option lists", () => {
    const [mount] = parseMountinfo(["36 35 98:0 /mnt1 /mnt\\040two rw,noatime master:1 - ext3 /dev/root rw,errors=continue"]);
    assert.deepEqual(mount, { mountPoint: "/mnt two", root: "/mnt1", fsType: "ext3", source: "/dev/root", options: ["rw", "noatime", "rw", "errors=continue"] });
  });

  it("writes a VM's filesystems by the UUIDs blkid read, and the initrd modules of the path to / only", () => {
    const { text, unknown } = hardwareModule(parseProbe(vm), "root@127.0.0.1", "2026-12-04");
    assert.deepEqual(unknown, []);
    assert.equal(
      text.split("\n").slice(3).join("\n"),
      [
        'import { defineModule } from "keel";',
        "",
        "export default defineModule({",
        "  boot: {",
        "    initrd: {",
        '      availableKernelModules: ["virtio_blk", "virtio_pci"],',
        "      // After the root, the system loads nvme for /scratch; ahci, sd_mod for /srv/data.",
        "    },",
        '    kernelModules: ["kvm-intel"],',
        "  },",
        "  fileSystems: {",
        '    "/": { device: "/dev/disk/by-uuid/5c1e4f0a-8a53-4d4e-9a7b-2f3c6d1e0b9a", fsType: "ext4" },',
        '    "/boot": { device: "/dev/disk/by-uuid/3A1B-7C2D", fsType: "vfat", options: ["fmask=0077", "dmask=0077"] },',
        '    "/scratch": { device: "/dev/disk/by-uuid/5d1c7f3e-0b7a-4c1e-9d55-0e6f2b0a9c11", fsType: "xfs" },',
        '    "/srv/data": { device: "/dev/disk/by-uuid/0e3f4c1a-77b2-4f0e-8a9b-3c2d1e0f5a6b", fsType: "ext4", options: ["noatime"] },',
        "  },",
        "  swapDevices: [",
        '    { device: "/dev/disk/by-uuid/9f0e1d2c-3b4a-5968-7766-554433221100" },',
        "  ],",
        "  networking: {",
        "    interfaces: {",
        "      enp0s3: { useDHCP: true }, // virtio_net",
        "    },",
        "  },",
        "});",
        "",
      ].join("\n"),
    );
    assert.match(text, /^\/\/ The hardware of root@127\.0\.0\.1, probed by `keel hardware-config` on 2026-12-04\.$/m);
    assert.match(text, /^\/\/ Kernel 6\.1\.0-28-amd64 \(x86_64\), booted by UEFI; a virtual machine \(kvm, systemd-detect-virt\): no microcode is asked for, the host's applies\.$/m);
    assert.doesNotMatch(text, /packages|distro/, "a VM's virtio devices load no firmware");
  });

  it("gives the same text for the same machine whatever order the probe listed it in", () => {
    const sections = vm.split("@@ ").filter((s) => s !== "");
    const shuffled = `@@ ${[...sections].reverse().join("@@ ")}`;
    assert.equal(hardwareModule(parseProbe(shuffled), "h", "d").text, hardwareModule(parseProbe(vm), "h", "d").text);
  });

  it("says what it could not know instead of guessing: a container, a UUID blkid may not read, a kernel without modules.alias", () => {
    const confined = vm
      .replace("container none", "container docker")
      .replace(/blkid UUID=5c1e4f0a[^\n]*\nblkid TYPE=ext4\n/, "! blkid -p /dev/vda2: blkid: error: /dev/vda2: Operation not permitted\n")
      .replace(/@@ aliases\n[\s\S]*$/, "@@ aliases\n! /lib/modules/6.1.0-28-amd64/modules.alias is missing (a kernel without modules, or one keel cannot see)\n");
    const { text, unknown } = hardwareModule(parseProbe(confined), "h", "d");
    assert.equal(unknown.length, 3);
    assert.equal(unknown[0], "the machine's hardware: this is a container (docker), whose devices, firmware and kernel are its host's; probe the host");
    assert.match(text, /; a container \(docker, systemd-detect-virt\)\.$/m);
    assert.match(text, /^ {4}\/\/ fileSystems\."\/": \/dev\/vda2 \(ext4\) is mounted there, but its UUID could not be read \(blkid -p \/dev\/vda2: blkid: error: \/dev\/vda2: Operation not permitted\)\.$/m);
    assert.match(text, /^ {6}\/\/ boot\.initrd\.availableKernelModules: \/lib\/modules\/6\.1\.0-28-amd64\/modules\.alias is missing .*; the path to \/ is virtio:d00000002v00001AF4 \(driver virtio_blk\), pci:\S+ \(driver virtio-pci\)\.$/m);
    assert.ok(!/availableKernelModules: \[/.test(text), "no list it could not know");
    assert.match(text, /^\/\/ Not known to the probe:$/m);
  });

  it("puts dm_crypt and the USB keyboard's module in the initrd of a root behind LUKS; microcode only on bare metal", () => {
    const luks = vm
      .replace("ext4 /dev/vda2 rw,discard", "ext4 /dev/mapper/root rw")
      // The script prints a mapped device's slaves and their nodes in its own section.
      .replace("@@ block /dev/vda2\nname vda2\nblkid UUID=5c1e4f0a-8a53-4d4e-9a7b-2f3c6d1e0b9a\nblkid TYPE=ext4\n", "@@ block /dev/mapper/root\nname dm-0\nblkid UUID=5c1e4f0a-8a53-4d4e-9a7b-2f3c6d1e0b9a\nblkid TYPE=ext4\ndm CRYPT-LUKS2-8c1e-root\nslave vda2\n")
      .replace("vm kvm", "vm none")
      .replace("@@ keyboards\n", "@@ keyboards\nusb:v046DpC31Cd6400dc00dsc00dp00ic03isc01ip01in00\n")
      .replace("@@ aliases\n", "@@ aliases\nusb:v046DpC31Cd6400dc00dsc00dp00ic03isc01ip01in00 usbhid \n");
    const { text } = hardwareModule(parseProbe(luks), "h", "d");
    assert.match(text, /availableKernelModules: \["dm_crypt", "usbhid", "virtio_blk", "virtio_pci"\]/);
    assert.match(text, /^ {2}\/\/ intel-microcode \(non-free-firmware\): the GenuineIntel CPU's microcode updates \(the machine's apt does not know the package; Debian 12 has it in non-free-firmware\)\.$/m);
    assert.match(text, /^ {2}packages: \["intel-microcode"\],\n {2}distro: \{ components: \["main", "non-free-firmware"\] \},$/m);
  });

  it("on a machine keel laid out, names the file system at /keel as / (not the overlay, not the generation inside it)", () => {
    const laidOut = vm
      .replace("28 1 254:2 / / rw,relatime shared:1 - ext4 /dev/vda2 rw,discard", "28 1 0:25 / / rw,relatime shared:1 - overlay overlay rw,lowerdir=/generation,upperdir=/keel/layers/1/upper,workdir=/keel/layers/1/work")
      .replace(
        "34 28 0:30 / /tmp",
        "35 28 254:2 / /keel rw,relatime shared:9 - ext4 /dev/vda2 rw\n36 35 254:2 /generations/1 /keel/generation ro,relatime shared:10 - ext4 /dev/vda2 rw\n37 28 254:2 /state/var /var rw,relatime shared:11 - ext4 /dev/vda2 rw\n34 28 0:30 / /tmp",
      );
    const { text, unknown } = hardwareModule(parseProbe(laidOut), "h", "d");
    assert.deepEqual(unknown, []);
    assert.match(text, /^\/\/ Laid out by keel: its root file system is the one mounted at \/keel\.$/m);
    assert.match(text, /^ {4}"\/": \{ device: "\/dev\/disk\/by-uuid\/5c1e4f0a-8a53-4d4e-9a7b-2f3c6d1e0b9a", fsType: "ext4" \},$/m);
    assert.doesNotMatch(text, /"\/keel|"\/var"/);
    assert.match(text, /availableKernelModules: \["virtio_blk", "virtio_pci"\]/);
  });

  it("on a VM keel run boots from the store's image, says it has no root file system of its own instead of naming the state disk", () => {
    const direct = vm
      .replace("28 1 254:2 / / rw,relatime shared:1 - ext4 /dev/vda2 rw,discard", "28 1 0:25 / / rw,relatime shared:1 - overlay overlay rw,lowerdir=/generation")
      .replace("34 28 0:30 / /tmp", "35 28 254:16 / /keel rw,relatime shared:9 - ext4 /dev/vdb rw\n36 35 254:0 / /keel/generation ro,relatime shared:10 - ext4 /dev/vda ro\n34 28 0:30 / /tmp");
    const { text, unknown } = hardwareModule(parseProbe(direct), "h", "d");
    assert.deepEqual(unknown, [
      'fileSystems."/": the machine runs a generation keel brought on a device of its own (`keel run`\'s image, an ISO): it has no root file system of keel\'s layout; probe it once installed',
    ]);
    assert.doesNotMatch(text, /"\/keel|"\/": \{/);
  });

  it("names the firmware packages whose files the bound drivers load, with their components and devices; a failed load's file is said to be missing", () => {
    const metal = vm
      .replace("vm kvm", "vm none")
      .replace("vendor_id\t: GenuineIntel", "vendor_id\t: AuthenticAMD")
      .replace(
        "@@ aliases\n",
        [
          "@@ devices",
          "r8169 0000:03:00.0 pci 10ec:8168 Ethernet controller: Realtek Semiconductor Co., Ltd. RTL8111/8168/8411 PCI Express Gigabit Ethernet Controller (rev 15)",
          "iwlwifi 0000:04:00.0 pci 8086:2723 Network controller: Intel Corporation Wi-Fi 6 AX200 (rev 1a)",
          "amdgpu 0000:05:00.0 pci 1002:1638",
          "xhci_pci 0000:06:00.3 pci 1022:1639",
          "@@ firmware-files",
          "have iwlwifi iwlwifi-cc-a0-72.ucode firmware-iwlwifi non-free-firmware/kernel",
          "have r8169 rtl_nic/rtl8168h-2.fw firmware-realtek non-free-firmware/kernel",
          "have r8169 rtl_nic/rtl8168g-3.fw firmware-realtek non-free-firmware/kernel",
          "failed iwlwifi 0000:04:00.0 iwlwifi-cc-a0-77.ucode",
          "failed amdgpu 0000:05:00.0 amdgpu/green_sardine_sdma.bin",
          "failed platform regulatory.0 regulatory.db",
          "@@ microcode",
          "intel-microcode non-free-firmware/admin",
          "amd64-microcode non-free-firmware/admin",
          "@@ aliases",
          "",
        ].join("\n"),
      );
    const { text, unknown } = hardwareModule(parseProbe(metal), "h", "d");
    assert.match(text, /^ {2}\/\/ amd64-microcode \(non-free-firmware\): the AuthenticAMD CPU's microcode updates\.$/m);
    assert.match(text, /^ {2}\/\/ firmware-iwlwifi \(non-free-firmware\): iwlwifi for pci 8086:2723 Network controller: Intel Corporation Wi-Fi 6 AX200 \(rev 1a\) \(0000:04:00\.0\)\.$/m);
    assert.match(text, /^ {2}\/\/ firmware-realtek \(non-free-firmware\): r8169 for pci 10ec:8168 Ethernet controller: Realtek .* \(0000:03:00\.0\)\.$/m);
    assert.match(text, /^ {2}packages: \["amd64-microcode", "firmware-iwlwifi", "firmware-realtek"\],\n {2}distro: \{ components: \["main", "non-free-firmware"\] \},$/m);
    // iwlwifi asks for newer files first and has one: not missing. amdgpu found none of its own. regulatory.0 is no PCI or USB device.
    assert.deepEqual(unknown, [
      "packages: amdgpu (0000:05:00.0) asked for the firmware amdgpu/green_sardine_sdma.bin, which the machine does not have; `apt-file search amdgpu/green_sardine_sdma.bin` names its package (Debian's are in non-free-firmware)",
    ]);
    assert.match(text, /^\/\/ {3}packages: amdgpu \(0000:05:00\.0\) asked for the firmware amdgpu\/green_sardine_sdma\.bin/m);
  });
});
