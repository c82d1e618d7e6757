// The QEMU command line for `keel run`, built from the system's boot files,
// its `virtualisation` options and where the VM keeps its state. Pure: every
// choice the user can see (ports, shares, memory, accelerator, console) is
// decided here and unit-tested.
import type { ResolvedSystem } from "../config/project.js";
import type { BootDescription } from "../steps/system.js";
import { ConfigError } from "../errors.js";

export type Accelerator = "kvm" | "tcg";

export interface VmFiles {
  /** The system's root file system image (store, attached read-only). */
  readonly image: string;
  /** The VM's own writable disk (qcow2, in its state directory). */
  readonly disk: string;
  readonly qmp: string;
  readonly consoleLog: string;
  readonly pidFile: string;
  /** The serial console: the terminal, or a socket that `keel vm console` attaches to. */
  readonly console: { readonly kind: "terminal" } | { readonly kind: "socket"; readonly path: string };
  /** virtiofsd's socket for each virtiofs share, by tag. */
  readonly virtiofsSockets: Readonly<Record<string, string>>;
}

export interface VmSpec {
  readonly system: string;
  readonly boot: BootDescription;
  readonly virtualisation: ResolvedSystem["virtualisation"];
  readonly files: VmFiles;
  readonly accel: Accelerator;
  /** Writes to the VM's disk are thrown away when it stops. */
  readonly ephemeral: boolean;
  /** The project's public key, authorized for root in the guest. */
  readonly sshPublicKey: string | null;
}

type ForwardedPort = ResolvedSystem["virtualisation"]["forwardPorts"][number];

/** One `hostfwd=` or `guestfwd=` of QEMU's user network. */
export function forwardRule(port: ForwardedPort, index: number): string {
  if (port.from === "host") return `hostfwd=${port.proto}:${port.host.address}:${port.host.port}-${port.guest.address}:${port.guest.port}`;
  if (port.proto !== "tcp" || port.guest.address === "") {
    throw new ConfigError(
      `virtualisation.forwardPorts[${index}] forwards from the guest, which QEMU does only for TCP to a guest address.\n` +
        'Fix: set proto = "tcp" and guest.address (e.g. "10.0.2.100") for this forward.',
    );
  }
  return `guestfwd=tcp:${port.guest.address}:${port.guest.port}-tcp:${port.host.address}:${port.host.port}`;
}

/** The kernel command line: the system's, then what keel's stage 1 and guest units read. */
export function kernelCommandLine(spec: VmSpec): string {
  const words = [...spec.boot.kernelParams, "root=/dev/vda", "keel.state=/dev/vdb"];
  if (spec.sshPublicKey !== null) {
    const [type, key] = spec.sshPublicKey.trim().split(/\s+/);
    words.push(`keel.ssh_key=${type}:${key}`);
  }
  return words.join(" ");
}

/** A comma in a QEMU option value is written twice. */
function qemuValue(value: string): string {
  return value.replaceAll(",", ",,");
}

export function qemuArgv(spec: VmSpec): string[] {
  const v = spec.virtualisation;
  const { files } = spec;
  const argv = ["qemu-system-x86_64", "-name", `keel-${spec.system}`, "-machine", `q35,accel=${spec.accel}`];
  if (spec.accel === "kvm") argv.push("-cpu", "host");
  argv.push("-m", String(v.memorySize), "-smp", String(v.cores), "-nodefaults", "-no-user-config");
  argv.push("-kernel", spec.boot.kernel, "-initrd", spec.boot.initrd);
  argv.push("-append", kernelCommandLine(spec));
  argv.push("-drive", `file=${qemuValue(files.image)},format=raw,if=virtio,readonly=on`);
  argv.push("-drive", `file=${qemuValue(files.disk)},format=qcow2,if=virtio${spec.ephemeral ? ",snapshot=on" : ""}`);
  const rules = v.forwardPorts.map(forwardRule);
  argv.push("-netdev", ["user", "id=net0", ...rules].join(","), "-device", "virtio-net-pci,netdev=net0");

  const shares = Object.entries(v.sharedDirectories);
  for (const [tag, share] of shares.filter(([, s]) => s.mechanism === "9p")) {
    argv.push("-virtfs", `local,path=${qemuValue(share.source)},mount_tag=${tag},security_model=none${share.readOnly ? ",readonly=on" : ""}`);
  }
  const virtiofs = shares.filter(([, s]) => s.mechanism === "virtiofs");
  if (virtiofs.length > 0) {
    // vhost-user needs the guest's memory shared with virtiofsd.
    argv.push("-object", `memory-backend-memfd,id=mem,size=${v.memorySize}M,share=on`, "-numa", "node,memdev=mem");
    for (const [tag] of virtiofs) {
      argv.push("-chardev", `socket,id=fs-${tag},path=${qemuValue(files.virtiofsSockets[tag] ?? "")}`);
      argv.push("-device", `vhost-user-fs-pci,chardev=fs-${tag},tag=${tag}`);
    }
  }

  if (v.graphics) argv.push("-vga", "std");
  else argv.push("-display", "none");
  // The log holds this boot only: keel reads its tail for a panic, which an earlier boot's must not fake.
  const log = `logfile=${qemuValue(files.consoleLog)},logappend=off`;
  if (files.console.kind === "terminal") {
    // Ctrl-A X quits, Ctrl-A C switches to QEMU's monitor; Ctrl-C goes to the guest.
    argv.push("-chardev", `stdio,id=console,mux=on,signal=off,${log}`, "-serial", "chardev:console", "-mon", "chardev=console,mode=readline");
  } else {
    argv.push("-chardev", `socket,id=console,path=${qemuValue(files.console.path)},server=on,wait=off,${log}`, "-serial", "chardev:console");
  }
  argv.push("-qmp", `unix:${qemuValue(files.qmp)},server=on,wait=off`, "-pidfile", files.pidFile);
  return argv;
}
