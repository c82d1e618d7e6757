// keel run's pure parts: the QEMU command line from `virtualisation` for a
// direct or a UEFI boot, the kernel command line, --forward, the SSH forward
// and the ssh command.
import assert from "node:assert/strict";
import path from "node:path";
import { describe, it } from "node:test";
import { sshForward } from "../../src/cli/run.ts";
import { evaluateSystem, type ResolvedSystem } from "../../src/config/project.ts";
import { defineModule, mkForce } from "../../src/index.ts";
import { planSystem } from "../../src/plan/plan.ts";
import type { BootDescription } from "../../src/steps/system.ts";
import { testHost } from "./host-facts.ts";
import { kernelCommandLine, parseForward, qemuArgv, type VmBoot, type VmSpec } from "../../src/vm/qemu.ts";
import { vmPaths, vmRemote } from "../../src/vm/state.ts";

const guest = defineModule({
  boot: { kernelParams: ["console=ttyS0"] },
  fileSystems: { "/": { device: "/dev/vda", fsType: "ext4" } },
  services: { openssh: { enable: true } },
});

function configOf(...modules: object[]): ResolvedSystem {
  const project = { file: path.resolve("keel.config.ts"), inputs: {}, systems: new Map([["test", [guest, ...modules]]]) };
  return evaluateSystem(project, "test").config;
}

const files: VmSpec["files"] = {
  qmp: "/state/vms/test/qmp.sock",
  consoleLog: "/state/vms/test/console.log",
  pidFile: "/state/vms/test/qemu.pid",
  console: { kind: "socket", path: "/state/vms/test/console.sock" },
  virtiofsSockets: { fast: "/state/vms/test/virtiofs-fast.sock" },
  emptyDisks: [],
};

/** The system step's boot.json: the store's kernel and initrd, the system's kernel parameters. */
const bootFiles = (config: ResolvedSystem): BootDescription => ({
  release: "6.1.0-1-amd64",
  kernel: "/store/k/vmlinuz",
  initrd: "/store/i/initrd.img",
  rootfs: "/store/r/rootfs.tar",
  kernelParams: config.boot.kernelParams,
});

/** A direct boot: the image (generation 3a7c) and the VM's state disk. */
function direct(config: ResolvedSystem, stateDisk = "/state/vms/test/disk.qcow2"): VmBoot {
  return { kind: "direct", boot: bootFiles(config), generation: "3a7c", image: "/store/abc-image-test/rootfs.img", stateDisk };
}

const uefi: VmBoot = { kind: "uefi", disk: "/state/vms/test/uefi-disk.qcow2", efiVars: "/state/vms/test/efivars.fd" };

function spec(config: ResolvedSystem, overrides: Partial<VmSpec> = {}): VmSpec {
  return {
    system: "test",
    boot: direct(config),
    virtualisation: config.virtualisation,
    files,
    accel: "tcg",
    ephemeral: false,
    extraForwards: [],
    ...overrides,
  };
}

/** The value after each occurrence of `flag`. */
function values(argv: readonly string[], flag: string): string[] {
  return argv.flatMap((arg, i) => (arg === flag ? [argv[i + 1] ?? ""] : []));
}

describe("the QEMU command line", () => {
  it("memory, cores and the accelerator come from virtualisation and the probe", () => {
    const argv = qemuArgv(spec(configOf({ virtualisation: { memorySize: 2048, cores: 3 } })));
    assert.deepEqual(values(argv, "-m"), ["2048"]);
    assert.deepEqual(values(argv, "-smp"), ["3"]);
    assert.deepEqual(values(argv, "-machine"), ["q35,accel=tcg"]);
    assert.ok(!argv.includes("-cpu"), "TCG emulates its default CPU");
    const kvm = qemuArgv(spec(configOf(), { accel: "kvm" }));
    assert.deepEqual(values(kvm, "-machine"), ["q35,accel=kvm"]);
    assert.deepEqual(values(kvm, "-cpu"), ["host"]);
  });

  it("forwarded ports listen on 127.0.0.1 unless the option names an address; UDP too", () => {
    const argv = qemuArgv(
      spec(
        configOf({
          virtualisation: {
            forwardPorts: [
              { host: { port: 2222 }, guest: { port: 22 } },
              { proto: "udp", host: { port: 5353 }, guest: { port: 53 } },
              { host: { address: "0.0.0.0", port: 8080 }, guest: { port: 80 } },
            ],
          },
        }),
      ),
    );
    assert.deepEqual(values(argv, "-netdev"), ["user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=udp:127.0.0.1:5353-:53,hostfwd=tcp:0.0.0.0:8080-:80"]);
    assert.deepEqual(values(argv, "-device"), ["virtio-net-pci,netdev=net0", "virtio-rng-pci"], "and the host's entropy");
  });

  it("a forward from the guest needs TCP and a guest address", () => {
    const config = configOf({ virtualisation: { forwardPorts: [{ from: "guest", host: { port: 3000 }, guest: { port: 3000 } }] } });
    assert.throws(() => qemuArgv(spec(config)), /virtualisation\.forwardPorts\[0\] forwards from the guest, which QEMU does only for TCP to a guest address\./);
    const ok = configOf({ virtualisation: { forwardPorts: [{ from: "guest", host: { port: 3000 }, guest: { address: "10.0.2.100", port: 3000 } }] } });
    assert.match(values(qemuArgv(spec(ok)), "-netdev")[0] ?? "", /guestfwd=tcp:10\.0\.2\.100:3000-tcp:127\.0\.0\.1:3000$/);
  });

  it("the image is attached read-only, the VM's disk writable, or thrown away when ephemeral", () => {
    const argv = qemuArgv(spec(configOf()));
    assert.deepEqual(values(argv, "-drive"), [
      "file=/store/abc-image-test/rootfs.img,format=raw,if=virtio,readonly=on",
      "file=/state/vms/test/disk.qcow2,format=qcow2,if=virtio",
    ]);
    assert.equal(values(qemuArgv(spec(configOf(), { ephemeral: true })), "-drive")[1], "file=/state/vms/test/disk.qcow2,format=qcow2,if=virtio,snapshot=on");
  });

  it("shares: 9p read-only or read-write; virtiofs through virtiofsd's socket with shared memory", () => {
    const config = configOf({
      virtualisation: {
        memorySize: 512,
        sharedDirectories: {
          src: { source: "/home/me/src", target: "/mnt/src", readOnly: true },
          out: { source: "/home/me/out", target: "/mnt/out" },
          fast: { source: "/home/me/fast", target: "/mnt/fast", mechanism: "virtiofs" },
        },
      },
    });
    const argv = qemuArgv(spec(config));
    assert.deepEqual(values(argv, "-virtfs"), [
      "local,path=/home/me/src,mount_tag=src,security_model=none,readonly=on",
      "local,path=/home/me/out,mount_tag=out,security_model=none",
    ]);
    assert.deepEqual(values(argv, "-object"), ["memory-backend-memfd,id=mem,size=512M,share=on"]);
    assert.ok(values(argv, "-chardev").includes("socket,id=fs-fast,path=/state/vms/test/virtiofs-fast.sock"));
    assert.ok(values(argv, "-device").includes("vhost-user-fs-pci,chardev=fs-fast,tag=fast"));
  });

  it("each share is also a file system of the guest", () => {
    const config = configOf({ virtualisation: { sharedDirectories: { src: { source: "/home/me/src", target: "/mnt/src", readOnly: true } } } });
    assert.deepEqual(config.fileSystems["/mnt/src"], {
      device: "src",
      label: null,
      fsType: "9p",
      options: ["trans=virtio", "version=9p2000.L", "msize=1048576", "cache=loose", "ro", "nofail"],
    });
  });

  it("a share's name must be a valid mount tag", () => {
    assert.throws(() => configOf({ virtualisation: { sharedDirectories: { "a b": { source: "/x", target: "/mnt/x" } } } }), /virtualisation\.sharedDirectories\."a b": a share's name is its mount tag/);
  });

  it("graphics off: no display; the console on the terminal with Ctrl-A as QEMU's escape, or on a socket when detached", () => {
    const detached = qemuArgv(spec(configOf()));
    assert.deepEqual(values(detached, "-display"), ["none"]);
    assert.deepEqual(values(detached, "-chardev"), ["socket,id=console,path=/state/vms/test/console.sock,server=on,wait=off,logfile=/state/vms/test/console.log,logappend=off"]);
    const terminal = qemuArgv(spec(configOf(), { files: { ...files, console: { kind: "terminal" } } }));
    assert.deepEqual(values(terminal, "-chardev"), ["stdio,id=console,mux=on,signal=off,logfile=/state/vms/test/console.log,logappend=off"]);
    assert.deepEqual(values(terminal, "-mon"), ["chardev=console,mode=readline"]);
    const graphical = qemuArgv(spec(configOf({ virtualisation: { graphics: true } })));
    assert.deepEqual(values(graphical, "-vga"), ["std"]);
    assert.deepEqual(values(graphical, "-display"), []);
  });

  it("a direct boot: the store's kernel and initrd, and the kernel command line naming the image, the state disk and the generation", () => {
    const argv = qemuArgv(spec(configOf()));
    assert.deepEqual(values(argv, "-kernel"), ["/store/k/vmlinuz"]);
    assert.deepEqual(values(argv, "-initrd"), ["/store/i/initrd.img"]);
    assert.deepEqual(values(argv, "-append"), ["console=ttyS0 root=/dev/vda keel.state=/dev/vdb keel.generation=3a7c"]);
    assert.equal(kernelCommandLine(bootFiles(configOf()), "f00d"), "console=ttyS0 root=/dev/vda keel.state=/dev/vdb keel.generation=f00d");
  });

  it("a comma in a path is doubled, as QEMU's option syntax needs", () => {
    const argv = qemuArgv(spec(configOf(), { boot: direct(configOf(), "/state/a,b/disk.qcow2") }));
    assert.equal(values(argv, "-drive")[1], "file=/state/a,,b/disk.qcow2,format=qcow2,if=virtio");
    const efi = qemuArgv(spec(configOf(), { boot: { ...uefi, efiVars: "/state/a,b/efivars.fd" } }));
    assert.equal(values(efi, "-drive")[1], "if=pflash,format=raw,unit=1,file=/state/a,,b/efivars.fd");
  });

  it("--forward adds to the system's forwards", () => {
    const extra = parseForward("8022:22");
    assert.ok(extra);
    const argv = qemuArgv(spec(configOf({ virtualisation: { forwardPorts: [{ host: { port: 2222 }, guest: { port: 22 } }] } }), { extraForwards: [extra] }));
    assert.deepEqual(values(argv, "-netdev"), ["user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=tcp:127.0.0.1:8022-:22"]);
  });
});

describe("the QEMU command line of a UEFI boot (--firmware uefi)", () => {
  it("OVMF's code read-only and the VM's own EFI variables as pflash, then the VM's disk; no kernel of the store", () => {
    const argv = qemuArgv(spec(configOf(), { boot: uefi }));
    assert.deepEqual(values(argv, "-drive"), [
      "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
      "if=pflash,format=raw,unit=1,file=/state/vms/test/efivars.fd",
      "file=/state/vms/test/uefi-disk.qcow2,format=qcow2,if=none,id=disk0",
    ]);
    assert.equal(values(argv, "-device")[0], "virtio-blk-pci,drive=disk0,bootindex=1");
    for (const flag of ["-kernel", "-initrd", "-append"]) assert.deepEqual(values(argv, flag), [], flag);
  });

  it("the disk attached as virtualisation.diskInterface says: NVMe with a serial, SATA on q35's first AHCI port", () => {
    const device = (diskInterface: string) => values(qemuArgv(spec(configOf({ virtualisation: { diskInterface } }), { boot: uefi })), "-device")[0];
    assert.equal(device("nvme"), "nvme,drive=disk0,serial=keel-disk0,bootindex=1");
    assert.equal(device("sata"), "ide-hd,drive=disk0,bus=ide.0,bootindex=1");
  });

  it("ephemeral: the disk's writes are thrown away, the EFI variables kept", () => {
    const drives = values(qemuArgv(spec(configOf(), { boot: uefi, ephemeral: true })), "-drive");
    assert.equal(drives[1], "if=pflash,format=raw,unit=1,file=/state/vms/test/efivars.fd");
    assert.equal(drives[2], "file=/state/vms/test/uefi-disk.qcow2,format=qcow2,if=none,id=disk0,snapshot=on");
  });
});

describe("--forward [ADDRESS:]HOSTPORT:GUESTPORT", () => {
  const tcp = (address: string, hostPort: number, guestPort: number) => ({ from: "host", proto: "tcp", host: { address, port: hostPort }, guest: { address: "", port: guestPort } });
  it("listens on 127.0.0.1 unless an address is given", () => {
    assert.deepEqual(parseForward("8022:22"), tcp("127.0.0.1", 8022, 22));
    assert.deepEqual(parseForward("0.0.0.0:8022:22"), tcp("0.0.0.0", 8022, 22));
  });
  it("an IPv6 address is refused: QEMU's user network forwards IPv4 only", () => assert.equal(parseForward("[::1]:8022:22"), undefined));
  it("an IPv4 address with a part over 255 is no address", () => assert.equal(parseForward("127.0.0.256:8022:22"), undefined));
  it("anything else is no forward", () => {
    for (const text of ["", "22", "8022", "8022:", ":22", "8022:22:", "0:22", "8022:0", "65536:22", "8022:70000", "a:b", "8022-22", "8022:22/udp", "::1:8022:22", "[::1]8022:22"]) {
      assert.equal(parseForward(text), undefined, text);
    }
  });
});

describe("SSH to the VM", () => {
  it("the forward to sshd's port is found; 0.0.0.0 is reached through 127.0.0.1", () => {
    assert.equal(sshForward(configOf()), null);
    assert.deepEqual(sshForward(configOf({ virtualisation: { forwardPorts: [{ host: { port: 8080 }, guest: { port: 80 } }, { host: { address: "0.0.0.0", port: 2222 }, guest: { port: 22 } }] } })), {
      address: "127.0.0.1",
      port: 2222,
    });
    assert.deepEqual(sshForward(configOf({ services: { openssh: { ports: [8022] } }, virtualisation: { forwardPorts: [{ host: { port: 8022 }, guest: { port: 8022 } }] } })), {
      address: "127.0.0.1",
      port: 8022,
    });
  });

  it("ssh uses the project's key and pins the guest's host key in the VM's own known_hosts", () => {
    const paths = vmPaths({ XDG_STATE_HOME: "/state" }, "/home/me/project/keel.config.ts", "qemu");
    assert.match(paths.dir, /^\/state\/keel\/projects\/[0-9a-f]{12}\/vms\/qemu$/);
    const remote = vmRemote(paths, "127.0.0.1", 2222, { XDG_RUNTIME_DIR: "/run/user/1000" });
    assert.deepEqual(remote.sshArgv("'uname' -r"), [
      "ssh", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-p", "2222", "-o", `IdentityFile=${paths.key}`, "-o", "IdentitiesOnly=yes",
      "-o", `UserKnownHostsFile=${paths.dir}/known_hosts`, "-o", "StrictHostKeyChecking=accept-new", "-o", "HostKeyAlias=keel-vm-qemu", "-o", "HashKnownHosts=no",
      "-o", "ConnectTimeout=10", "-o", "ControlMaster=auto", "-o", `ControlPath=/run/user/1000/keel-ssh-${process.getuid?.() ?? 0}/%C`, "-o", "ControlPersist=300",
      "--", "root@127.0.0.1", "'uname' -r",
    ]);
  });

  it("a state directory too deep for a unix socket is refused with the fix", () => {
    assert.throws(() => vmPaths({ XDG_STATE_HOME: `/${"x".repeat(80)}` }, "/p/keel.config.ts", "qemu"), /too deep for its sockets .*\nFix: set XDG_STATE_HOME to a shorter directory\./);
  });
});

describe("the image keel run boots", () => {
  const host = testHost;
  it("is sized by virtualisation.diskSize, labelled as stage 1 finds it, made of the rootfs and the kernel", () => {
    const plan = planSystem("test", configOf({ virtualisation: { diskSize: 2048 } }), host);
    const image = plan.steps.find((s) => s.id === "image");
    assert.deepEqual(image?.slice, { diskSize: 2048, label: "keel-root", etc: {} });
    assert.equal(image?.inputs.rootfs, plan.steps.find((s) => s.id === "rootfs"));
    assert.equal(image?.inputs.kernel, plan.steps.find((s) => s.id === "kernel"));
    const labelled = planSystem("test", configOf({ fileSystems: { "/": mkForce({ label: "nixos", fsType: "ext4" }) } }), host);
    assert.deepEqual(labelled.steps.find((s) => s.id === "image")?.slice, { diskSize: 4096, label: "nixos", etc: {} });
  });
});
