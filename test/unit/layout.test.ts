// The machine layout's pure parts: the disk's identity, geometry and partition
// table, the ESP's boot entries, the layout's options (what is the machine's
// state, growing the root partition) and keel image's --size.
import assert from "node:assert/strict";
import path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { parseSize } from "../../src/cli/image.ts";
import { evaluateSystem, type ResolvedSystem } from "../../src/config/project.ts";
import { ConfigError } from "../../src/errors.ts";
import { blessedEntry, defaultEntry, diskCommandLine, diskGeometry, diskIdentity, entryName, espFiles, espMiB, isoCommandLine, isoLabel, loaderConf, loaderEntry, parseEntryName, partitionScript, trialEntry, type DiskIdentity, type Generation } from "../../src/image/layout.ts";
import { defineModule } from "../../src/index.ts";
import { initScript } from "../../src/steps/initrd.ts";

const thisFile = fileURLToPath(import.meta.url);

function configOf(...modules: object[]): ResolvedSystem {
  const project = { file: path.resolve("keel.config.ts"), inputs: {}, systems: new Map([["aethelred", modules]]) };
  return evaluateSystem(project, "aethelred").config;
}

const rootUuid = "5c1e0f0a-1b2c-4d3e-8f40-5a6b7c8d9e0f";
/** As a hardware module names an installed machine's file systems. */
const byUuid = (esp: string) =>
  defineModule({ fileSystems: { "/": { device: `/dev/disk/by-uuid/${rootUuid}`, fsType: "ext4" }, "/boot": { device: `/dev/disk/by-uuid/${esp}`, fsType: "vfat" } } });
const rootOnVda = defineModule({ fileSystems: { "/": { device: "/dev/vda", fsType: "ext4" } } });

const uuidV4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe("the disk's identity", () => {
  it("takes the UUIDs fileSystems names: the root's, and the vfat /boot's volume id without its dash", () => {
    const identity = diskIdentity(configOf(byUuid("3A1B-7C2D")), "seed");
    assert.equal(identity.root.uuid, rootUuid);
    assert.equal(identity.esp.volumeId, "3A1B7C2D");
    assert.deepEqual([identity.root.label, identity.esp.label], ["keel-root", "ESP"]);
    assert.equal(diskIdentity(configOf(byUuid("3a1b-7c2d")), "seed").esp.volumeId, "3A1B7C2D", "as mkfs.vfat -i takes it");
  });

  it("takes the labels fileSystems names, and finds the ESP at /boot/efi too", () => {
    const labelled = defineModule({ fileSystems: { "/": { label: "nixos", fsType: "ext4" }, "/boot/efi": { device: "/dev/disk/by-label/BOOT", fsType: "vfat" } } });
    const identity = diskIdentity(configOf(labelled), "seed");
    assert.deepEqual([identity.root.label, identity.esp.label], ["nixos", "BOOT"]);
    assert.match(identity.root.uuid, uuidV4);
  });

  it("a /boot that is not vfat is no ESP: its id is not the ESP's", () => {
    const ext4Boot = defineModule({ fileSystems: { "/": { device: "/dev/vda", fsType: "ext4" }, "/boot": { device: "/dev/disk/by-uuid/3A1B-7C2D", fsType: "ext4" } } });
    assert.notEqual(diskIdentity(configOf(ext4Boot), "seed").esp.volumeId, "3A1B7C2D");
  });

  it("what the config does not name derives from the seed: the same for one seed, another for another", () => {
    const config = configOf(rootOnVda);
    const one = diskIdentity(config, "3f2a9c");
    assert.deepEqual(diskIdentity(config, "3f2a9c"), one, "the same system, the same disk");
    const other = diskIdentity(config, "77e0b1");
    const derived = (identity: DiskIdentity) => [identity.diskGuid, identity.esp.partUuid, identity.root.partUuid, identity.root.uuid, identity.esp.volumeId];
    for (const [i, id] of derived(one).entries()) assert.notEqual(id, derived(other)[i], id);
    assert.equal(new Set(derived(one)).size, 5, "no two alike");
    for (const uuid of derived(one).slice(0, 4)) assert.match(uuid, uuidV4);
    assert.match(one.esp.volumeId, /^[0-9A-F]{8}$/);
  });

  it("what the config names stays whatever the seed", () => {
    const config = configOf(byUuid("3A1B-7C2D"));
    assert.deepEqual([diskIdentity(config, "a").root.uuid, diskIdentity(config, "a").esp.volumeId], [diskIdentity(config, "b").root.uuid, diskIdentity(config, "b").esp.volumeId]);
  });
});

const identity: DiskIdentity = {
  diskGuid: "0b1c2d3e-4f50-4172-8394-a5b6c7d8e9f0",
  esp: { partUuid: "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", volumeId: "3A1B7C2D", label: "ESP" },
  root: { partUuid: "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a", uuid: rootUuid, label: "keel-root" },
};

describe("the disk's geometry and partition table", () => {
  it("1 MiB for the primary GPT, the ESP, the root, 1 MiB for the backup GPT: in 512-byte sectors", () => {
    assert.equal(espMiB, 512);
    assert.deepEqual(diskGeometry(1000), { espStart: 2048, espSectors: 512 * 2048, rootStart: 2048 + 512 * 2048, rootSectors: 1000 * 2048, totalSectors: (1 + 512 + 1000 + 1) * 2048 });
  });

  it("sfdisk's script: GPT with the disk's GUID, the ESP and the root by their types and identities", () =>
    assert.equal(
      partitionScript(identity, diskGeometry(1000)),
      "label: gpt\n" +
        "label-id: 0b1c2d3e-4f50-4172-8394-a5b6c7d8e9f0\n" +
        "unit: sectors\n" +
        'start=2048, size=1048576, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d, name="ESP"\n' +
        'start=1050624, size=2048000, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, uuid=9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a, name="keel-root"\n',
    ));

  it("without a root size, the root takes the rest of the disk (an install)", () => {
    const lines = partitionScript(identity, { ...diskGeometry(1000), rootSectors: null }).split("\n");
    assert.equal(lines[4], 'start=1050624, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, uuid=9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a, name="keel-root"');
  });
});

describe("the ESP: systemd-boot and a Boot Loader Spec entry per generation", () => {
  const generation: Generation = { number: 3, system: "aethelred", kernelParams: ["console=ttyS0", "quiet"] };

  it("the kernel command line finds the root by UUID and names the generation, then the system's parameters", () =>
    assert.equal(diskCommandLine(identity.root.uuid, generation), `root=UUID=${rootUuid} rootfstype=ext4 keel.generation=3 console=ttyS0 quiet`));

  it("an entry: its title, its version for sorting, the generation's kernel and initrd, the command line", () =>
    assert.equal(
      loaderEntry(diskCommandLine(identity.root.uuid, generation), generation),
      "title keel aethelred (generation 3)\n" +
        "version 3\n" +
        "sort-key keel\n" +
        "linux /EFI/keel/3/vmlinuz\n" +
        "initrd /EFI/keel/3/initrd.img\n" +
        `options root=UUID=${rootUuid} rootfstype=ext4 keel.generation=3 console=ttyS0 quiet\n`,
    ));

  it("an ISO's command line finds the medium by its label and reads the generation from it; the state in memory", () => {
    const label = isoLabel("a9fce2e8e7c6d5f0a1b2");
    assert.equal(label, "KEEL_A9FCE2E8E7C6", "ISO 9660's characters, at most 32");
    assert.equal(isoCommandLine(label, generation), `root=LABEL=${label} rootfstype=iso9660 keel.loop=/keel/generation.squashfs keel.state=tmpfs keel.generation=3 fstab=no console=ttyS0 quiet`);
  });

  it("stage 1 loop-mounts keel.loop's file from the medium, and keeps the medium at /keel/medium", () => {
    const script = initScript({ availableKernelModules: [], kernelModules: [], root: null, optionalModules: ["overlay"], busybox: "" }, []);
    assert.match(script, /keel\.loop=\*\) loop="\$\{word#keel\.loop=\}"/);
    assert.match(script, /mount -o ro \$\{fstype:\+-t "\$fstype"\} "\$device" \/medium \|\| fail "cannot mount the medium \$device"\n.*\n {2}device="\/medium\$loop"\n {2}fstype=""/);
    assert.match(script, /mount --move \/medium \/keel\/medium/);
  });

  it("loader.conf has the menu's timeout and no fixed default: the newest entry boots", () => {
    assert.equal(loaderConf(5), "timeout 5\neditor no\n");
    assert.doesNotMatch(loaderConf(0), /^default/m);
  });

  it("the ESP's files: systemd-boot as the fallback loader and its own, the generation's kernel and initrd, the loader's text", () =>
    assert.deepEqual(espFiles(diskCommandLine(identity.root.uuid, generation), generation, { bootloader: "/t/systemd-bootx64.efi", kernel: "/k/vmlinuz", initrd: "/i/initrd.img" }, 5), {
      "EFI/BOOT/BOOTX64.EFI": { copy: "/t/systemd-bootx64.efi" },
      "EFI/systemd/systemd-bootx64.efi": { copy: "/t/systemd-bootx64.efi" },
      "EFI/keel/3/vmlinuz": { copy: "/k/vmlinuz" },
      "EFI/keel/3/initrd.img": { copy: "/i/initrd.img" },
      "loader/loader.conf": { text: loaderConf(5) },
      "loader/entries/keel-3.conf": { text: loaderEntry(diskCommandLine(identity.root.uuid, generation), generation) },
    }));
});

describe("the layout's options", () => {
  const etcText = (config: ResolvedSystem, name: string) => config.environment.etc[name]?.text;

  it("/etc/keel/persistence lists the state's directories and files, and what under them is the generation's", () =>
    assert.equal(
      etcText(configOf(rootOnVda), "keel/persistence"),
      ["directory /var", "directory /home", "directory /root", "directory /srv", "file /etc/machine-id"].join("\n") +
        "\n" +
        ["/var/lib/dpkg", "/var/lib/apt", "/var/cache/apt", "/var/cache/debconf", "/var/lib/ucf", "/var/lib/systemd/deb-systemd-helper-enabled", "/var/lib/systemd/deb-systemd-helper-masked"]
          .map((p) => `generation ${p}\n`)
          .join(""),
    ));

  it("a directory of the config's joins the list once; sshd's host key is the machine's state", () => {
    const config = configOf(rootOnVda, defineModule({ services: { openssh: { enable: true } }, environment: { persistence: { directories: ["/var/lib/app", "/var"] } } }));
    const lines = (etcText(config, "keel/persistence") ?? "").split("\n");
    assert.deepEqual(lines.filter((l) => l.startsWith("directory ")), ["directory /var", "directory /home", "directory /root", "directory /srv", "directory /var/lib/app"]);
    assert.deepEqual(lines.filter((l) => l.startsWith("file ")), ["file /etc/ssh/ssh_host_ed25519_key", "file /etc/ssh/ssh_host_ed25519_key.pub", "file /etc/machine-id"]);
  });

  it("every kind the list names is one stage 1 handles", () => {
    const kinds = new Set((etcText(configOf(rootOnVda), "keel/persistence") ?? "").split("\n").filter(Boolean).map((l) => l.split(" ")[0]));
    assert.deepEqual([...kinds], ["directory", "file", "generation"]);
    const script = initScript({ availableKernelModules: [], kernelModules: [], root: null, optionalModules: ["overlay"], busybox: "" }, []);
    assert.match(script, /^ {6}directory\)$/m);
    assert.match(script, /^ {6}file\)$/m);
    assert.match(script, /\[ "\$kind" = generation \]/);
  });

  it("the root partition grows to fill its disk on boot, unless boot.growPartition is false", () => {
    const grows = configOf(rootOnVda);
    assert.deepEqual(grows.systemd.services["keel-grow-root"]?.wantedBy, ["multi-user.target"]);
    assert.deepEqual(grows.systemd.services["keel-grow-root"]?.unitConfig, { ConditionPathIsMountPoint: "/keel", ConditionKernelCommandLine: "!keel.state" }, "only on the machine layout, not a VM's state disk");
    assert.match(grows.systemd.services["keel-grow-root"]?.script ?? "", /^systemd-repart --dry-run=no --definitions=\/etc\/keel\/repart\.d "\/dev\/\$disk"$/m);
    assert.equal(etcText(grows, "keel/repart.d/50-root.conf"), "[Partition]\nType=root\n");
    const fixed = configOf(rootOnVda, defineModule({ boot: { growPartition: false } }));
    assert.equal(fixed.systemd.services["keel-grow-root"], undefined);
    assert.equal(fixed.environment.etc["keel/repart.d/50-root.conf"], undefined);
    assert.equal(etcText(fixed, "systemd/system/keel-grow-root.service"), undefined);
  });

  it("a label longer than its file system keeps is refused, naming the option, not truncated on the disk", () => {
    const refused = (module: object) => {
      try {
        configOf(module);
      } catch (error) {
        assert.ok(error instanceof ConfigError, String(error));
        return error.message;
      }
      return assert.fail("the system was accepted");
    };
    assert.match(
      refused(defineModule({ fileSystems: { "/": { label: "the-office-machine-root", fsType: "ext4" } } })),
      /fileSystems\."\/"\.label names the label "the-office-machine-root" \(23 bytes\), longer than the 16 bytes an ext4 label keeps: .* Use a label of at most 16 bytes\./,
    );
    assert.match(
      refused(defineModule({ fileSystems: { "/": { device: "/dev/vda2", fsType: "ext4" }, "/boot": { device: "/dev/disk/by-label/EFI-SYSTEM-1", fsType: "vfat" } } })),
      /fileSystems\."\/boot"\.device names the label "EFI-SYSTEM-1" \(12 bytes\), longer than the 11 bytes a FAT label keeps/,
    );
    assert.equal(diskIdentity(configOf(defineModule({ fileSystems: { "/": { label: "sixteen-bytes-ok", fsType: "ext4" } } })), "seed").root.label, "sixteen-bytes-ok");
  });

  it("a relative path is no state directory: refused, naming the option", () =>
    assert.throws(() => configOf(rootOnVda, defineModule({ environment: { persistence: { directories: ["var/lib/app"] } } })), (error) => {
      assert.ok(error instanceof ConfigError, String(error));
      assert.equal(
        error.message.replaceAll(thisFile, "<test>"),
        "A definition for option `environment.persistence.directories[definition 2, entry 1]' is not of type `absolute path (e.g. \"/var/lib/app\")': it is not an absolute path below /.\n" +
          "- In `<test>': \"var/lib/app\"\n" +
          "Fix: give `environment.persistence.directories[definition 2, entry 1]' a value of type `absolute path (e.g. \"/var/lib/app\")' in `<test>'.",
      );
      return true;
    }));

  it("nor is / itself, a path with white space or with a .. part", () => {
    const refused = { "/": "is not an absolute path below /", "/var/lib/my app": "holds white space", "/var/../etc": 'has an empty, "." or ".." part' };
    for (const [bad, problem] of Object.entries(refused)) {
      assert.throws(() => configOf(rootOnVda, defineModule({ environment: { persistence: { files: [bad] } } })), (error) => {
        assert.ok(error instanceof ConfigError, String(error));
        assert.match(error.message, /^A definition for option `environment\.persistence\.files\[definition \d+, entry 1\]' is not of type `absolute path/);
        assert.ok(error.message.includes(`': it ${problem}.\n`), error.message);
        return true;
      });
    }
  });
});

describe("keel image --size", () => {
  it("K, M, G, T as powers of 1024 (iB and B optional, any case)", () => {
    assert.equal(parseSize("8G"), 8 * 1024 ** 3);
    assert.equal(parseSize("512M"), 512 * 1024 ** 2);
    assert.equal(parseSize("1.5G"), 1.5 * 1024 ** 3);
    assert.equal(parseSize("2T"), 2 * 1024 ** 4);
    assert.equal(parseSize("1K"), 1024);
    for (const same of ["8GiB", "8gb", "8 G", " 8G "]) assert.equal(parseSize(same), 8 * 1024 ** 3, same);
  });
  it("a plain number is bytes, rounded up to whole 512-byte sectors", () => {
    assert.equal(parseSize("4096"), 4096);
    assert.equal(parseSize("1000"), 1024);
    assert.equal(parseSize("8589934592"), 8 * 1024 ** 3);
  });
  it("anything else is no size", () => {
    for (const junk of ["", "G", "eight", "8X", "8GG", "-1G", "1e9", "0", "0M", "8G8", "1,5G", "0x10"]) assert.equal(parseSize(junk), undefined, junk);
  });
});

describe("boot counting: the entries of a deployed machine", () => {
  const entry = loaderEntry(diskCommandLine(rootUuid, { number: 4, system: "aethelred", kernelParams: ["console=ttyS0"] }), { number: 4, system: "aethelred", kernelParams: [] });
  it("entry file names read back with their tries; other files are not keel's", () => {
    assert.deepEqual(parseEntryName("keel-4.conf"), { name: "keel-4.conf", generation: 4, triesLeft: null });
    assert.deepEqual(parseEntryName("keel-4+1.conf"), { name: "keel-4+1.conf", generation: 4, triesLeft: 1 });
    assert.deepEqual(parseEntryName("keel-12+0-1.conf"), { name: "keel-12+0-1.conf", generation: 12, triesLeft: 0 });
    for (const other of ["debian-4.conf", "keel-x.conf", "keel-4.conf.tmp", ".keel-99.tmp"]) assert.equal(parseEntryName(other), undefined, other);
    assert.equal(entryName(4), "keel-4.conf");
    assert.equal(entryName(4, 1), "keel-4+1.conf");
  });
  it("the newest entry that has not used up its tries boots when nobody chooses", () => {
    const names = (...files: string[]) => files.map((f) => parseEntryName(f) ?? assert.fail(f));
    assert.equal(defaultEntry(names("keel-1.conf", "keel-2.conf", "keel-3+1.conf"))?.generation, 3, "a trial not yet booted");
    assert.equal(defaultEntry(names("keel-1.conf", "keel-2.conf", "keel-3+0-1.conf"))?.generation, 2, "a trial that booted once and was not blessed");
    assert.equal(defaultEntry(names("keel-1+1.conf", "keel-2+0.conf", "keel-3+0-1.conf"))?.generation, 1, "a rollback: newer entries set aside");
    assert.equal(defaultEntry([]), undefined);
  });
  it("a trial's words go on the entry's command line once, and blessing takes them off again", () => {
    const trial = trialEntry(entry);
    assert.match(trial, new RegExp(`^options root=UUID=${rootUuid} rootfstype=ext4 keel\\.generation=4 console=ttyS0 keel\\.trial panic=10$`, "m"));
    assert.equal(trialEntry(trial), trial);
    assert.equal(blessedEntry(trial), entry);
    assert.equal(trial.replace(/^options.*$/m, ""), entry.replace(/^options.*$/m, ""), "nothing but the command line changes");
  });
});
