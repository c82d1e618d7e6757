// The pure parts of the build steps: what goes into the initrd and what stage 1
// does, the files and script of the root filesystem, mmdebstrap's command
// line, a generation's tree, the VM variant, and argv quoting.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { cpioArchive } from "../../src/steps/cpio.ts";
import { localRepositoryOptions } from "../../src/steps/debs.ts";
import { generationParts, generationTreeCommands } from "../../src/steps/image.ts";
import { initScript, missingModules, parseAliases, parseModulesDep, parseSoftdeps, rootSpec, selectModules, type KernelModules } from "../../src/steps/initrd.ts";
import { etcFiles, mmdebstrapArgv, setupScript, type RootfsSlice } from "../../src/steps/rootfs.ts";
import { systemdEscape } from "../../src/options/systemd.ts";
import { defineModule, mkForce } from "../../src/index.ts";
import { ConfigError } from "../../src/errors.ts";
import { evaluateSystem } from "../../src/config/project.ts";
import { showCommand, shellQuote } from "../../src/host/exec.ts";
import { planSystem } from "../../src/plan/plan.ts";
import { testHost } from "./host-facts.ts";

const kernel: KernelModules = {
  release: "6.1.0-test",
  modules: parseModulesDep(
    [
      "kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko kernel/fs/mbcache.ko kernel/lib/crc16.ko",
      "kernel/fs/jbd2/jbd2.ko:",
      "kernel/fs/mbcache.ko:",
      "kernel/lib/crc16.ko:",
      "kernel/crypto/crc32c_generic.ko:",
      "kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko",
      "kernel/drivers/virtio/virtio.ko:",
      "kernel/drivers/virtio/virtio_ring.ko:",
      "kernel/drivers/net/virtio-net.ko: kernel/drivers/virtio/virtio.ko",
    ].join("\n"),
  ),
  builtin: new Set(["virtio_pci"]),
  softdeps: parseSoftdeps("softdep ext4 pre: crypto-crc32c\nsoftdep jbd2 pre: crypto-crc32c\n"),
  aliases: parseAliases("alias crypto-crc32c crc32c_generic\nalias crc32c crc32c_generic\n"),
};

const wanted = (...names: string[]) => names.map((name) => ({ option: "boot.initrd.availableKernelModules", name }));

describe("initrd modules", () => {
  it("a module comes with its dependencies", () =>
    assert.deepEqual(selectModules(wanted("virtio_blk"), kernel), {
      files: ["kernel/drivers/block/virtio_blk.ko", "kernel/drivers/virtio/virtio.ko", "kernel/drivers/virtio/virtio_ring.ko"],
      load: ["virtio_blk"],
    }));
  it("soft dependencies are included and loaded first: ext4 needs crc32c", () =>
    assert.deepEqual(selectModules(wanted("ext4"), kernel).load, ["crc32c_generic", "ext4"]));
  it("built-in modules need nothing", () => assert.deepEqual(selectModules(wanted("virtio_pci"), kernel), { files: [], load: [] }));
  it("- and _ name the same module", () => assert.deepEqual(selectModules(wanted("virtio_net"), kernel).load, ["virtio_net"]));
  it("an unknown module names the option and suggests one", () =>
    assert.throws(() => selectModules(wanted("virtio_blkk"), kernel), {
      message:
        "boot.initrd.availableKernelModules names the kernel module `virtio_blkk', which kernel 6.1.0-test does not have.\n" +
        "Did you mean `virtio_blk'?\nFix: correct the name in boot.initrd.availableKernelModules, or build a kernel that has it.",
    }));
  it("the root is found by device, LABEL or UUID", () => {
    const root = { fsType: "ext4", options: [] };
    assert.equal(rootSpec({ ...root, device: "/dev/vda", label: null }), "/dev/vda");
    assert.equal(rootSpec({ ...root, device: null, label: "nixos" }), "LABEL=nixos");
    assert.equal(rootSpec({ ...root, device: "/dev/disk/by-uuid/5c1e-4f0a", label: null }), "UUID=5c1e-4f0a");
    assert.equal(rootSpec({ ...root, device: "/dev/disk/by-label/root", label: null }), "LABEL=root");
  });
  it("stage 1 loads the modules in order and mounts the configured root", () => {
    const script = initScript({ availableKernelModules: [], kernelModules: [], root: { device: "/dev/vda", label: null, fsType: "ext4", options: ["defaults", "noatime"] }, optionalModules: ["overlay"], busybox: "" }, ["crc32c_generic", "ext4"]);
    assert.match(script, /^for module in crc32c_generic ext4; do$/m);
    assert.match(script, /^root=\/dev\/vda$/m);
    assert.match(script, /^fstype=ext4$/m);
    assert.match(script, /^flags=noatime$/m);
    assert.match(script, /^exec switch_root \/newroot \/sbin\/init$/m);
  });
  it("the archive unpacks with cpio: files, modes, symlinks, all owned by root", () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "keel-cpio-"));
    try {
      const archive = path.join(dir, "initrd.img");
      writeFileSync(archive, cpioArchive([
        { kind: "directory", path: "bin" },
        { kind: "file", path: "init", data: Buffer.from("#!/bin/sh\n"), mode: 0o755 },
        { kind: "symlink", path: "bin/sh", target: "busybox" },
      ]));
      const listing = execFileSync("sh", ["-c", `zcat ${shellQuote(archive)} | cpio -tv 2>/dev/null`], { encoding: "utf8" });
      assert.match(listing, /^drwxr-xr-x +\d+ root +root +0 .* bin$/m);
      assert.match(listing, /^-rwxr-xr-x +\d+ root +root +10 .* init$/m);
      assert.match(listing, /^lrwxrwxrwx +\d+ root +root +7 .* bin\/sh -> busybox$/m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("stage 1: the machine layout", () => {
  const script = initScript({ availableKernelModules: [], kernelModules: [], root: { device: "/dev/disk/by-uuid/5c1e0f0a-1b2c-4d3e-8f40-5a6b7c8d9e0f", label: null, fsType: "ext4", options: [] }, optionalModules: ["overlay"], busybox: "" }, ["ext4"]);

  it("is a script a POSIX shell parses (a syntax error would leave every machine unbootable)", () => assert.doesNotThrow(() => execFileSync("sh", ["-n"], { input: script })));

  it("boots the generation the kernel command line names: a disk's generations/N, read-only, under a writable layer of its own", () => {
    assert.match(script, /^ {4}keel\.generation=\*\) generation="\$\{word#keel\.generation=\}" ;;$/m);
    assert.match(script, /^ {2}mount --bind "\/keel\/generations\/\$generation" \/generation && mount -o remount,bind,ro \/generation /m);
    assert.match(script, /^layer="\/keel\/layers\/\$\{generation:-0\}"$/m);
    assert.match(script, /^mount -t overlay overlay -o "lowerdir=\/generation,upperdir=\$layer\/upper,workdir=\$layer\/work" \/newroot /m);
  });

  it("binds the state's directories and files that /etc/keel/persistence lists; the machine id is copied, not bound", () => {
    assert.match(script, /^list=\/generation\/etc\/keel\/persistence$/m);
    assert.match(script, /^ {4}kept="\/keel\/state\$target"$/m);
    assert.match(script, /^ {8}mount --bind "\$kept" "\/newroot\$target" \|\| fail "cannot bind the state's \$target" ;;$/m, "a directory");
    assert.match(script, /^ {10}cp "\$kept" \/newroot\/etc\/machine-id$/m);
    assert.match(script, /tr -d - < \/proc\/sys\/kernel\/random\/uuid > "\$kept"/, "a new machine's id is made once, in its state");
    assert.match(script, /^mount --move \/keel \/newroot\/keel$/m, "the machine's root stays reachable as /keel");
  });
});

const projectOf = (modules: object[]) => ({ file: path.resolve("keel.config.ts"), inputs: {}, systems: new Map([["box", modules]]) });

function sliceOf(...modules: object[]): RootfsSlice {
  const config = evaluateSystem(projectOf(modules), "box").config;
  const plan = planSystem("box", config, testHost);
  return plan.steps.find((s) => s.id === "rootfs")?.slice as RootfsSlice;
}

/** The text keel writes to /etc/<name>. */
const etcText = (slice: RootfsSlice, name: string): string | null | undefined => slice.etc[name]?.text;

const rootOnVda = defineModule({ fileSystems: { "/": { device: "/dev/vda", fsType: "ext4" } } });

describe("root filesystem", () => {
  const slice = sliceOf(
    defineModule({
      services: { openssh: { enable: true } },
      users: {
        users: {
          alice: { isNormalUser: true, uid: 1000, extraGroups: ["sudo", "kvm"], hashedPassword: "$y$j9T$abc", openssh: { authorizedKeys: { keys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGUrsd0as9j3gZ3BAKSC/JHSu868kaeieGg5nlhonf+I alice"] } } },
          obrien: { isNormalUser: true, description: "Pat O'Brien; $(reboot)" },
        },
      },
      fileSystems: { "/": { label: "root", fsType: "ext4" }, "/boot": { device: "/dev/vda1", fsType: "vfat", options: ["umask=077"] }, "/srv/my data": { label: "my data", fsType: "ext4" } },
      swapDevices: [{ device: "/dev/vda3" }],
      networking: { interfaces: { enp3s0: { ipv4: { addresses: [{ address: "10.0.0.2", prefixLength: 24 }] } } }, defaultGateway: "10.0.0.1", nameservers: ["10.0.0.1"] },
      systemd: { services: { hello: { wantedBy: ["multi-user.target"], script: "echo hello", environment: { GREETING: "hi there" } } } },
      time: { timeZone: "Europe/London" },
      boot: { kernelModules: ["kvm-intel"] },
    }),
  );

  it("its slice is the packages, the files under /etc and what the setup reads: nothing it no longer renders", () => {
    assert.deepEqual(Object.keys(slice).sort(), ["debs", "distro", "etc", "setup"]);
    assert.deepEqual(Object.keys(slice.setup).sort(), ["groups", "timeZone", "units", "users"]);
    assert.equal("openssh" in (slice.setup.users.alice ?? {}), false, "keys are files, not setup");
  });

  it("fstab lists file systems by label or device, and swap; a space in a field is escaped", () =>
    assert.equal(
      etcText(slice, "fstab"),
      "# Written by keel from fileSystems and swapDevices.\nLABEL=root\t/\text4\tdefaults\t0\t1\n/dev/vda1\t/boot\tvfat\tumask=077\t0\t2\n" +
        "LABEL=my\\040data\t/srv/my\\040data\text4\tdefaults\t0\t2\n/dev/vda3\tnone\tswap\tsw\t0\t0\n",
    ));

  it("networkd: a static interface, and DHCP for the others", () => {
    assert.equal(etcText(slice, "systemd/network/10-keel-enp3s0.network"), "[Match]\nName=enp3s0\n\n[Network]\nAddress=10.0.0.2/24\nGateway=10.0.0.1\nDNS=10.0.0.1\n");
    assert.equal(etcText(slice, "systemd/network/99-keel-dhcp.network"), "[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n");
  });

  it("environment values reach systemd as written: backslashes, quotes and % escaped", () =>
    assert.equal(systemdEscape('DIR=C:\\temp "x" 50%'), 'DIR=C:\\\\temp \\"x\\" 50%%'));

  it("a service with a script becomes a unit and a script file, both under /etc", () => {
    assert.deepEqual(slice.etc["keel/services/hello-start"], { text: "#!/bin/sh\nset -e\necho hello\n", source: null, mode: "0755", sourceHash: null });
    assert.equal(
      etcText(slice, "systemd/system/hello.service"),
      '[Service]\nExecStart=/etc/keel/services/hello-start\nEnvironment="GREETING=hi there"\n\n[Install]\nWantedBy=multi-user.target\n',
    );
  });

  it("the openssh module's units: Debian's sshd without its second start, host keys made early on first boot (or when broken)", () => {
    assert.equal(slice.etc["systemd/system/ssh.service"], undefined, "Debian's ssh.service is kept");
    assert.equal(etcText(slice, "systemd/system/ssh.service.d/keel.conf"), "[Service]\nExecStartPre=\n", "without `sshd -t` first");
    assert.deepEqual(slice.setup.units.reorder, [
      { unit: "systemd-resolved.service", before: ["sysinit.target", "network.target"], after: [] },
      { unit: "ssh.service", before: [], after: ["network.target"] },
    ]);
    assert.equal(
      etcText(slice, "systemd/system/ssh-keygen.service"),
      "[Unit]\nDescription=Generate SSH host keys\nAfter=local-fs.target\nAfter=systemd-tmpfiles-setup.service\nBefore=ssh.service\nBefore=shutdown.target\nDefaultDependencies=no\nConflicts=shutdown.target\n\n" +
        "[Service]\nType=oneshot\nExecStart=/etc/keel/services/ssh-keygen-start\n\n[Install]\nWantedBy=ssh.service\n",
    );
    const keygen = etcText(slice, "keel/services/ssh-keygen-start") ?? "";
    assert.match(keygen, /^if ! ssh-keygen -l -f "\$key" .*\n {2}made=\$\(mktemp -d\)\n {2}ssh-keygen -q -t ed25519 -N "" -C "" -f "\$made\/key"\n/ms, "a missing or broken key is made again");
    // The key files are the state's, bound over the generation's by stage 1: replacing them would leave the bound ones stale.
    assert.match(keygen, /^ {2}cat "\$made\/key" > "\$key" && chmod 600 "\$key"\n {2}cat "\$made\/key\.pub" > "\$key\.pub" && chmod 644 "\$key\.pub"\n/m, "written through, not replaced");
    assert.doesNotMatch(keygen, /rm -f "\$key"/);
  });

  it("the overlay: hostname, hosts, keys per user for sshd, modules to load, sshd_config.d, by absolute path", () => {
    const files = etcFiles(slice.etc);
    assert.deepEqual(files["/etc/hostname"], { text: "box\n", mode: 0o644 });
    assert.match((files["/etc/hosts"] as { text: string }).text, /^127\.0\.1\.1\tbox$/m);
    assert.deepEqual(files["/etc/ssh/authorized_keys.d/alice"], { text: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGUrsd0as9j3gZ3BAKSC/JHSu868kaeieGg5nlhonf+I alice\n", mode: 0o644 });
    assert.deepEqual(files["/etc/modules-load.d/keel.conf"], { text: "kvm-intel\n", mode: 0o644 });
    assert.deepEqual(files["/etc/keel/services/hello-start"], { text: "#!/bin/sh\nset -e\necho hello\n", mode: 0o755 });
    assert.match((files["/etc/ssh/sshd_config.d/keel.conf"] as { text: string }).text, /^PasswordAuthentication no$/m);
    assert.match((files["/etc/ssh/sshd_config.d/keel.conf"] as { text: string }).text, /^AuthorizedKeysFile \.ssh\/authorized_keys \/etc\/ssh\/authorized_keys\.d\/%u$/m, "no VM-only key file");
  });

  it("missingModules: what a kernel has neither as a module nor built in (an ISO needs isofs, squashfs and loop)", async () => {
    const kernel = mkdtempSync(path.join(os.tmpdir(), "keel-kernel-"));
    try {
      writeFileSync(path.join(kernel, "release"), "6.1.0-test\n");
      mkdirSync(path.join(kernel, "lib/modules/6.1.0-test"), { recursive: true });
      writeFileSync(path.join(kernel, "lib/modules/6.1.0-test/modules.dep"), "kernel/fs/isofs/isofs.ko: kernel/drivers/cdrom/cdrom.ko\nkernel/drivers/cdrom/cdrom.ko:\n");
      writeFileSync(path.join(kernel, "lib/modules/6.1.0-test/modules.builtin"), "kernel/drivers/block/loop.ko\n");
      assert.deepEqual(await missingModules(kernel, ["isofs", "squashfs", "loop"]), ["squashfs"]);
    } finally {
      rmSync(kernel, { recursive: true, force: true });
    }
  });

  it("setup script: a package's unit with orderings dropped is copied to /etc by sed, which takes only those names out", () => {
    const script = setupScript(slice.setup);
    const line = script.split("\n").find((l) => l.startsWith("sed -E") && l.includes("systemd-resolved.service")) ?? "";
    assert.ok(line.endsWith("/usr/lib/systemd/system/systemd-resolved.service > /etc/systemd/system/systemd-resolved.service"), line);
    const unit = "[Unit]\nAfter=systemd-sysctl.service\nBefore=sysinit.target network.target nss-lookup.target\n";
    const sed = line.replace(/ \/usr\/lib\/systemd.*$/, "");
    const edited = execFileSync("sh", ["-c", sed], { input: unit, encoding: "utf8" });
    assert.equal(edited.replace(/[ \t]+/g, " "), "[Unit]\nAfter=systemd-sysctl.service\nBefore= nss-lookup.target\n");
  });

  it("setup script: users, groups, passwords, time zone and units, every value quoted", () => {
    const script = setupScript(slice.setup);
    assert.match(script, /^getent group kvm >\/dev\/null \|\| groupadd kvm$/m);
    assert.match(script, /^id -u alice >\/dev\/null 2>&1 \|\| useradd -m -u 1000 -U -G sudo,kvm -s \/bin\/bash -c '' alice$/m);
    assert.match(script, /^usermod -p '\$y\$j9T\$abc' alice$/m);
    assert.match(script, /^id -u obrien .* -c 'Pat O'\\''Brien; \$\(reboot\)' obrien$/m);
    assert.match(script, /^passwd -l obrien >\/dev\/null$/m);
    assert.match(script, /^ln -sf \/usr\/share\/zoneinfo\/Europe\/London \/etc\/localtime$/m);
    assert.match(script, /^systemctl add-wants multi-user.target ssh.service$/m);
    assert.match(script, /^systemctl enable ssh-keygen.service$/m);
    assert.match(script, /^rm -f \/etc\/ssh\/ssh_host_\*$/m);
  });

  it("mmdebstrap's command line: every pinned package, from the local repository only; the system keeps Debian's mirror", () =>
    assert.deepEqual(mmdebstrapArgv(slice, "/s/overlay", "/s/out/rootfs.tar", "/s/out/.repository"), [
      "mmdebstrap",
      "--mode=auto",
      "--variant=minbase",
      "--architectures=amd64",
      "--components=main",
      "--include=htop,systemd-sysv",
      ...localRepositoryOptions("/s/out/.repository"),
      "--customize-hook=sync-in /s/overlay /",
      '--customize-hook=chroot "$1" /bin/sh /.keel-setup.sh',
      "bookworm",
      "/s/out/rootfs.tar",
      "http://deb.debian.org/debian",
    ]));
});

const thisFile = fileURLToPath(import.meta.url);

/** Evaluating the system `box' with these modules fails with exactly `message', naming this file. */
function refused(message: string, ...modules: object[]): void {
  assert.throws(() => evaluateSystem(projectOf([rootOnVda, ...modules]), "box"), (error) => {
    assert.ok(error instanceof ConfigError, String(error));
    assert.equal(error.message.replaceAll(thisFile, "<test>"), message);
    return true;
  });
}

describe("generated files are options", () => {
  it("mkForce on an environment.etc entry replaces the file a module generates", () => {
    const forced = sliceOf(rootOnVda, defineModule({ environment: { etc: { fstab: mkForce({ text: "/dev/vda / ext4 noatime 0 1\n" }) } } }));
    assert.deepEqual(forced.etc.fstab, { text: "/dev/vda / ext4 noatime 0 1\n", source: null, mode: "0644", sourceHash: null });
    const unit = sliceOf(rootOnVda, defineModule({ services: { openssh: { enable: true } }, environment: { etc: { "systemd/system/ssh-keygen.service": { text: mkForce("[Service]\nExecStart=/bin/true\n") } } } }));
    assert.equal(etcText(unit, "systemd/system/ssh-keygen.service"), "[Service]\nExecStart=/bin/true\n");
  });

  it("a unit description with a line break is an error at evaluation, not an injected section", () =>
    refused(
      "A definition for option `systemd.services.hello.description' is not of type `single-line systemd value': it holds a line break.\n" +
        '- In `<test>\': "Says hello\\n[Service]\\nExecStartPre=/bin/rm -rf /"\n' +
        "Fix: give `systemd.services.hello.description' a value of type `single-line systemd value' in `<test>'.",
      defineModule({ systemd: { services: { hello: { description: "Says hello\n[Service]\nExecStartPre=/bin/rm -rf /", script: "echo hello" } } } }),
    ));

  it("a unit setting that ends in a backslash would swallow the next line", () =>
    refused(
      "A definition for option `systemd.services.hello.serviceConfig.ExecStart' is not of type `single-line systemd value': it ends with a backslash, which joins the next line to it.\n" +
        '- In `<test>\': "/bin/true \\\\"\n' +
        "Fix: give `systemd.services.hello.serviceConfig.ExecStart' a value of type `single-line systemd value' in `<test>'.",
      defineModule({ systemd: { services: { hello: { serviceConfig: { ExecStart: "/bin/true \\" } } } } }),
    ));

  it("unit names are checked where a unit is named: a key, a setting name, a list of units", () => {
    refused(
      'The name "hello.service" in `systemd.services\' is not a unit name without ".service" (e.g. "hello" for hello.service): it ends in ".service", which keel adds.\n' +
        "- In `<test>'\n" +
        'Fix: use a unit name without ".service" (e.g. "hello" for hello.service) in `<test>\'.',
      defineModule({ systemd: { services: { "hello.service": { script: "echo hello" } } } }),
    );
    refused(
      'The name "Type=simple\\nUser" in `systemd.services.hello.serviceConfig\' is not a systemd setting name (e.g. Type): it holds characters other than letters, digits and -.\n' +
        "- In `<test>'\n" +
        "Fix: use a systemd setting name (e.g. Type) in `<test>'.",
      defineModule({ systemd: { services: { hello: { script: "echo hello", serviceConfig: { "Type=simple\nUser": "root" } } } } }),
    );
    refused(
      "A definition for option `systemd.services.hello.wantedBy[definition 1, entry 1]' is not of type `unit name (e.g. ssh.service)': it does not end in a unit type (.service, .socket, .device, .mount, .automount, .swap, .target, .path, .timer, .slice, .scope).\n" +
        '- In `<test>\': "multi-user"\n' +
        "Fix: give `systemd.services.hello.wantedBy[definition 1, entry 1]' a value of type `unit name (e.g. ssh.service)' in `<test>'.",
      defineModule({ systemd: { services: { hello: { script: "echo hello", wantedBy: ["multi-user"] } } } }),
    );
  });

  it("an sshd_config setting is one line under a keyword", () => {
    refused(
      "A definition for option `services.openssh.settings.Banner' is not of type `single-line string': it holds a line break.\n" +
        '- In `<test>\': "none\\nPermitRootLogin yes"\n' +
        "Fix: give `services.openssh.settings.Banner' a value of type `single-line string' in `<test>'.",
      defineModule({ services: { openssh: { enable: true, settings: { Banner: "none\nPermitRootLogin yes" } } } }),
    );
    refused(
      'The name "Match User" in `services.openssh.settings\' is not an sshd_config keyword (e.g. X11Forwarding): it holds characters other than letters and digits.\n' +
        "- In `<test>'\n" +
        "Fix: use an sshd_config keyword (e.g. X11Forwarding) in `<test>'.",
      defineModule({ services: { openssh: { enable: true, settings: { "Match User": "x" } } } }),
    );
  });

  it("a host name, an fstab field, an interface and an address cannot add lines to their files", () => {
    refused(
      "A definition for option `networking.hostName' is not a host name: it has a line break. A host name is 1 to 63 letters, digits and hyphens, and does not start or end with a hyphen (RFC 1123).\n" +
        '- In `<test>\': "box\\n10.0.0.1 evil"\n' +
        'Fix: set `networking.hostName\' to such a name, e.g. "box-10".',
      defineModule({ networking: { hostName: "box\n10.0.0.1 evil" } }),
    );
    refused(
      "A definition for option `fileSystems.\"/data\".fsType' is not of type `file system type (e.g. ext4)': it is empty or holds characters other than letters, digits and _ . + -.\n" +
        '- In `<test>\': "ext4 defaults"\n' +
        "Fix: give `fileSystems.\"/data\".fsType' a value of type `file system type (e.g. ext4)' in `<test>'.",
      defineModule({ fileSystems: { "/data": { device: "/dev/vdb", fsType: "ext4 defaults" } } }),
    );
    refused(
      'The name "../x" in `networking.interfaces\' is not an interface name (e.g. "enp3s0"): it holds characters other than letters, digits and _ . -.\n' +
        "- In `<test>'\n" +
        'Fix: use an interface name (e.g. "enp3s0") in `<test>\'.',
      defineModule({ networking: { interfaces: { "../x": {} } } }),
    );
    refused(
      "A definition for option `networking.interfaces.eth0.ipv4.addresses[definition 1, entry 1].address' is not of type `IPv4 address (e.g. 192.168.2.3)': it is not four numbers 0-255 joined by dots.\n" +
        '- In `<test>\': "10.0.0.300"\n' +
        "Fix: give `networking.interfaces.eth0.ipv4.addresses[definition 1, entry 1].address' a value of type `IPv4 address (e.g. 192.168.2.3)' in `<test>'.",
      defineModule({ networking: { interfaces: { eth0: { ipv4: { addresses: [{ address: "10.0.0.300", prefixLength: 24 }] } } } } }),
    );
  });

  it("a time zone is a tz name: it lands in /etc/timezone and a link under /usr/share/zoneinfo", () =>
    refused(
      "A definition for option `time.timeZone' is not of type `time zone name (e.g. Europe/London)': it is not a name from the tz database.\n" +
        '- In `<test>\': "../../../etc/shadow"\n' +
        "Fix: give `time.timeZone' a value of type `time zone name (e.g. Europe/London)' in `<test>'.",
      defineModule({ time: { timeZone: "../../../etc/shadow" } }),
    ));

  it("an /etc path stays inside /etc; a mount point is absolute", () => {
    refused(
      'The name "../shadow" in `environment.etc\' is not a path inside /etc, relative (e.g. "ssh/sshd_config.d/local.conf"): it has an empty, "." or ".." part.\n' +
        "- In `<test>'\n" +
        'Fix: use a path inside /etc, relative (e.g. "ssh/sshd_config.d/local.conf") in `<test>\'.',
      defineModule({ environment: { etc: { "../shadow": { text: "x" } } } }),
    );
    refused(
      'The name "data" in `fileSystems\' is not an absolute mount point (e.g. "/boot"): it does not start with /.\n' +
        "- In `<test>'\n" +
        'Fix: use an absolute mount point (e.g. "/boot") in `<test>\'.',
      defineModule({ fileSystems: { data: { device: "/dev/vdb", fsType: "ext4" } } }),
    );
  });
});

describe("the VM variant", () => {
  const common = defineModule({ services: { openssh: { enable: true } }, fileSystems: { "/": { device: "/dev/vda", fsType: "ext4" } } });
  const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGUrsd0as9j3gZ3BAKSC/JHSu868kaeieGg5nlhonf+I keel@project";
  const variant = (sshKey: string | null, ...modules: object[]) => evaluateSystem(projectOf([common, ...modules]), "box", { vm: { sshKey } }).config;
  const plain = evaluateSystem(projectOf([common]), "box").config;
  const vm = variant(key);

  it("authorizes the project's key for root in a file of its own that sshd also reads; root's account and the units stay the system's", () => {
    assert.equal(vm.environment.etc["keel/vm-authorized-keys/root"]?.text, `${key}\n`);
    assert.equal(plain.environment.etc["keel/vm-authorized-keys/root"], undefined);
    assert.deepEqual(vm.users.users, plain.users.users);
    assert.deepEqual(Object.keys(vm.systemd.services), Object.keys(plain.systemd.services));
    assert.match(vm.environment.etc["ssh/sshd_config.d/keel.conf"]?.text ?? "", /^AuthorizedKeysFile .* \/etc\/keel\/vm-authorized-keys\/%u$/m);
  });

  it("has sshd say on the serial console when it listens, which keel run waits for before it connects", () =>
    assert.match(vm.environment.etc["systemd/system/ssh.service.d/keel-vm-ready.conf"]?.text ?? "", /^ExecStartPost=-\/bin\/sh -c 'echo "keel-vm: sshd is listening" > \/dev\/ttyS0'$/m));

  it("before keel run has made the project's key, no key and no file", () =>
    assert.deepEqual(variant(null).environment.etc, plain.environment.etc));

  it("stage 1 gets the module for the VM's disk, as virtualisation.diskInterface attaches it", () => {
    assert.deepEqual(plain.boot.initrd.availableKernelModules, []);
    assert.deepEqual(vm.boot.initrd.availableKernelModules, ["virtio_pci", "virtio_blk"]);
    assert.deepEqual(variant(key, defineModule({ virtualisation: { diskInterface: "nvme" } })).boot.initrd.availableKernelModules, ["virtio_pci", "nvme"]);
    assert.deepEqual(variant(key, defineModule({ virtualisation: { diskInterface: "sata" } })).boot.initrd.availableKernelModules, ["virtio_pci", "ahci"]);
  });

  it("without sshd, the VM variant authorizes no key: its units and files under /etc are the system's", () => {
    const bare = evaluateSystem(projectOf([rootOnVda]), "box", { vm: { sshKey: key } }).config;
    const system = evaluateSystem(projectOf([rootOnVda]), "box").config;
    assert.deepEqual(bare.systemd.services, system.systemd.services);
    assert.deepEqual(bare.environment.etc, system.environment.etc);
  });
});

describe("a generation's tree", () => {
  it("the root filesystem, the kernel's modules and config as root-owned /usr/lib/modules and the VM's own /etc files; what mmdebstrap wrote stays", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "keel-modules-"));
    try {
      execFileSync("sh", ["-c", `mkdir -p ${dir}/kernel/lib/modules/6.1.0-test/kernel ${dir}/root/etc ${dir}/rootfs ${dir}/tree && echo x > ${dir}/kernel/lib/modules/6.1.0-test/kernel/a.ko && echo CONFIG_X=y > ${dir}/kernel/config && echo 6.1.0-test > ${dir}/kernel/release && echo box > ${dir}/root/etc/hostname && tar -cf ${dir}/rootfs/rootfs.tar -C ${dir}/root ./etc`]);
      const inputs = { rootfs: path.join(dir, "rootfs"), kernel: path.join(dir, "kernel") };
      assert.equal((await generationParts(inputs, {}, path.join(dir, "none"))).etc, null, "no /etc files of its own: nothing to copy");
      const parts = await generationParts(inputs, { "keel/only-in-vm": { text: "vm\n", source: null, mode: "0600", sourceHash: null } }, path.join(dir, "overlay"));
      const tree = path.join(dir, "tree");
      // As root the commands run as they are; as an ordinary user keel runs them in a user namespace.
      const script = [...generationTreeCommands(parts, tree), `cd ${shellQuote(tree)}`, "stat -c '%u:%g %s' usr/lib/modules/6.1.0-test/kernel/a.ko", "stat -c %a etc/keel/only-in-vm", "cat etc/hostname etc/keel/only-in-vm usr/lib/modules/6.1.0-test/config"].join(" && ");
      assert.equal(execFileSync("unshare", ["--map-root-user", "sh", "-c", script], { encoding: "utf8" }), "0:0 2\n600\nbox\nvm\nCONFIG_X=y\n");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("quoting", () => {
  it("plain words stay, others are single-quoted with quotes escaped", () => {
    assert.equal(shellQuote("/usr/lib/keel"), "/usr/lib/keel");
    assert.equal(shellQuote(""), "''");
    assert.equal(shellQuote("a b"), "'a b'");
    assert.equal(shellQuote("it's"), "'it'\\''s'");
    assert.equal(shellQuote("$(reboot)"), "'$(reboot)'");
    assert.equal(showCommand(["mmdebstrap", "--include=a,b", "x y"]), "mmdebstrap --include=a,b 'x y'");
  });
  it("a quoted word reaches a shell unchanged", () => {
    for (const word of ["it's", "$HOME", "a\nb", "`id`", "\\", "*"]) {
      assert.equal(execFileSync("sh", ["-c", `printf %s ${shellQuote(word)}`], { encoding: "utf8" }), word);
    }
  });
});
