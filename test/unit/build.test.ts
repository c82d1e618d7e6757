// The pure parts of the build steps: what goes into the initrd, the files and
// script of the root filesystem, mmdebstrap's command line, and argv quoting.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { cpioArchive } from "../../src/steps/cpio.ts";
import { localRepositoryOptions } from "../../src/steps/debs.ts";
import { imageScript } from "../../src/steps/image.ts";
import { initScript, parseAliases, parseModulesDep, parseSoftdeps, rootSpec, selectModules, type KernelModules } from "../../src/steps/initrd.ts";
import { fstab, mmdebstrapArgv, systemdEscape, networkUnits, overlayFiles, serviceFiles, setupScript, type RootfsSlice } from "../../src/steps/rootfs.ts";
import { defineModule } from "../../src/index.ts";
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
    const script = initScript({ availableKernelModules: [], kernelModules: [], root: { device: "/dev/vda", label: null, fsType: "ext4", options: ["defaults", "noatime"] }, busybox: "" }, ["crc32c_generic", "ext4"]);
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

function sliceOf(...modules: object[]): RootfsSlice {
  const project = { file: path.resolve("keel.config.ts"), inputs: {}, systems: new Map([["box", modules]]) };
  const config = evaluateSystem(project, "box").config;
  const plan = planSystem("box", config, testHost);
  return plan.steps.find((s) => s.id === "rootfs")?.slice as RootfsSlice;
}

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
      fileSystems: { "/": { label: "root", fsType: "ext4" }, "/boot": { device: "/dev/vda1", fsType: "vfat", options: ["umask=077"] } },
      swapDevices: [{ device: "/dev/vda3" }],
      networking: { interfaces: { enp3s0: { ipv4: { addresses: [{ address: "10.0.0.2", prefixLength: 24 }] } } }, defaultGateway: "10.0.0.1", nameservers: ["10.0.0.1"] },
      systemd: { services: { hello: { wantedBy: ["multi-user.target"], script: "echo hello", environment: { GREETING: "hi there" } } } },
      time: { timeZone: "Europe/London" },
      boot: { kernelModules: ["kvm-intel"] },
    }),
  );

  it("fstab lists file systems by label or device, and swap", () =>
    assert.equal(
      fstab(slice.fileSystems, slice.swapDevices),
      "# Written by keel from fileSystems and swapDevices.\nLABEL=root\t/\text4\tdefaults\t0\t1\n/dev/vda1\t/boot\tvfat\tumask=077\t0\t2\n/dev/vda3\tnone\tswap\tsw\t0\t0\n",
    ));

  it("networkd: a static interface, and DHCP for the others", () =>
    assert.deepEqual(networkUnits(slice.networking), {
      "10-keel-enp3s0.network": "[Match]\nName=enp3s0\n\n[Network]\nAddress=10.0.0.2/24\nGateway=10.0.0.1\nDNS=10.0.0.1\n",
      "99-keel-dhcp.network": "[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n",
    }));

  it("environment values reach systemd as written: backslashes, quotes and % escaped", () => {
    assert.equal(systemdEscape('DIR=C:\\temp "x" 50%'), 'DIR=C:\\\\temp \\"x\\" 50%%');
    assert.throws(() => systemdEscape("A=two\nlines"), { message: 'A systemd setting cannot hold a line break: "A=two\\nlines".\nFix: remove the line break from the value in systemd.services.' });
  });

  it("a service with a script becomes a unit and a script file", () => {
    const files = serviceFiles(slice.services);
    assert.deepEqual(files["/usr/lib/keel/hello-start"], { text: "#!/bin/sh\nset -e\necho hello\n", mode: 0o755 });
    assert.deepEqual(files["/etc/systemd/system/hello.service"], {
      text: '[Service]\nExecStart=/usr/lib/keel/hello-start\nEnvironment="GREETING=hi there"\n\n[Install]\nWantedBy=multi-user.target\n',
      mode: 0o644,
    });
  });

  it("the openssh module's units: sshd extended by nothing, host keys made on first boot (or when broken)", () => {
    const files = serviceFiles(slice.services);
    assert.equal(files["/etc/systemd/system/ssh.service"], undefined, "Debian's ssh.service is kept");
    assert.equal(
      (files["/etc/systemd/system/ssh-keygen.service"] as { text: string }).text,
      "[Unit]\nDescription=Generate SSH host keys\nBefore=ssh.service\n\n[Service]\nType=oneshot\nExecStart=/usr/lib/keel/ssh-keygen-start\n\n[Install]\nWantedBy=ssh.service\n",
    );
    assert.match((files["/usr/lib/keel/ssh-keygen-start"] as { text: string }).text, /^if ! ssh-keygen -l -f "\$key" .*\n {2}ssh-keygen -q -t ed25519 -N "" -f "\$key"\n {2}sync /ms, "a missing or broken key is made again");
  });

  it("overlay: hostname, keys per user for sshd, modules to load, /etc files", () => {
    const files = overlayFiles(slice);
    assert.deepEqual(files["/etc/hostname"], { text: "box\n", mode: 0o644 });
    assert.deepEqual(files["/etc/ssh/authorized_keys.d/alice"], { text: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGUrsd0as9j3gZ3BAKSC/JHSu868kaeieGg5nlhonf+I alice\n", mode: 0o644 });
    assert.deepEqual(files["/etc/modules-load.d/keel.conf"], { text: "kvm-intel\n", mode: 0o644 });
    assert.match((files["/etc/ssh/sshd_config.d/keel.conf"] as { text: string }).text, /^PasswordAuthentication no$/m);
  });

  it("setup script: users, groups, passwords, time zone and units, every value quoted", () => {
    const script = setupScript(slice);
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

describe("kernel modules in the image", () => {
  it("join the root filesystem as root-owned /usr/lib/modules; what mmdebstrap wrote stays", () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "keel-modules-"));
    try {
      execFileSync("sh", ["-c", `mkdir -p ${dir}/kernel/lib/modules/6.1.0-test/kernel ${dir}/root/etc ${dir}/tree && echo x > ${dir}/kernel/lib/modules/6.1.0-test/kernel/a.ko && echo box > ${dir}/root/etc/hostname && tar -cf ${dir}/rootfs.tar -C ${dir}/root ./etc`]);
      const script = imageScript(path.join(dir, "rootfs.tar"), path.join(dir, "kernel/lib/modules"), path.join(dir, "tree"), path.join(dir, "rootfs.img"), { diskSize: 16, label: "keel-root" });
      // As root the script runs as it is; as an ordinary user keel runs it in a user namespace.
      execFileSync("unshare", ["--map-root-user", "sh", "-c", script]);
      const stat = execFileSync("debugfs", ["-R", "stat /usr/lib/modules/6.1.0-test/kernel/a.ko", path.join(dir, "rootfs.img")], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
      assert.match(stat, /User: +0 +Group: +0 /);
      assert.match(stat, /Size: 2\b/);
      const hostname = execFileSync("debugfs", ["-R", "cat /etc/hostname", path.join(dir, "rootfs.img")], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
      assert.equal(hostname, "box\n");
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
