// The QEMU command line for `keel run`, built from the system's boot files,
// its `virtualisation` options and where the VM keeps its state. Pure: every
// choice the user can see (ports, shares, memory, accelerator, console) is
// decided here and unit-tested.
import type { ResolvedSystem } from "../config/project.js";
import type { BootDescription } from "../steps/system.js";
import { ConfigError } from "../errors.js";

export type Accelerator = "kvm" | "tcg";

export interface VmFiles {
  readonly qmp: string;
  readonly consoleLog: string;
  readonly pidFile: string;
  /** The serial console: the terminal, or a socket that `keel vm console` attaches to. */
  readonly console: { readonly kind: "terminal" } | { readonly kind: "socket"; readonly path: string };
  /** virtiofsd's socket for each virtiofs share, by tag. */
  readonly virtiofsSockets: Readonly<Record<string, string>>;
  /** The files of virtualisation.emptyDiskImages, in order. */
  readonly emptyDisks: readonly string[];
}

/** OVMF, as Debian's ovmf package installs it: the firmware (read-only) and the template of a VM's EFI variables. */
export const ovmf = { code: "/usr/share/OVMF/OVMF_CODE_4M.fd", vars: "/usr/share/OVMF/OVMF_VARS_4M.fd" } as const;

/**
 * How the VM boots:
 * - `direct`: QEMU loads the kernel and initrd from the store; the image (the
 *   generation, read-only) is /dev/vda and the VM's own disk (its state) /dev/vdb.
 * - `uefi`: like hardware: OVMF boots systemd-boot from the VM's disk (a copy
 *   of the system's disk image), attached as the system's diskInterface says.
 */
export type VmBoot =
  | { readonly kind: "direct"; readonly boot: BootDescription; readonly generation: string; readonly image: string; readonly stateDisk: string }
  | { readonly kind: "uefi"; readonly disk: string; readonly efiVars: string };

export interface VmSpec {
  readonly system: string;
  readonly boot: VmBoot;
  readonly virtualisation: ResolvedSystem["virtualisation"];
  readonly files: VmFiles;
  readonly accel: Accelerator;
  /** Writes to the VM's disk are thrown away when it stops. */
  readonly ephemeral: boolean;
  /** Forwards given on the command line, besides the system's. */
  readonly extraForwards: readonly ForwardedPort[];
}

export type ForwardedPort = ResolvedSystem["virtualisation"]["forwardPorts"][number];

/**
 * `--forward [ADDRESS:]HOSTPORT:GUESTPORT` (TCP from the host; 127.0.0.1
 * unless an IPv4 address is given: QEMU's user network forwards IPv4 only),
 * or undefined if malformed.
 */
export function parseForward(text: string): ForwardedPort | undefined {
  const match = /^(?:(\d{1,3}(?:\.\d{1,3}){3}):)?(\d{1,5}):(\d{1,5})$/.exec(text);
  if (!match) return undefined;
  const [hostPort, guestPort] = [Number(match[2]), Number(match[3])];
  if (hostPort < 1 || hostPort > 65535 || guestPort < 1 || guestPort > 65535) return undefined;
  if (match[1]?.split(".").some((part) => Number(part) > 255)) return undefined;
  return { from: "host", proto: "tcp", host: { address: match[1] ?? "127.0.0.1", port: hostPort }, guest: { address: "", port: guestPort } };
}

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

/** The kernel command line of a direct boot: the system's, then where stage 1 finds the generation and the state. */
export function kernelCommandLine(boot: BootDescription, generation: string): string {
  return [...boot.kernelParams, "root=/dev/vda", "keel.state=/dev/vdb", `keel.generation=${generation}`].join(" ");
}

type DiskInterface = ResolvedSystem["virtualisation"]["diskInterface"];

/** A disk as hardware has it: virtio, NVMe (which needs a serial) or SATA on q35's AHCI (six ports). */
function diskDevice(diskInterface: DiskInterface, drive: string, sataPort: number, boot: boolean): string {
  const bootIndex = boot ? ",bootindex=1" : "";
  switch (diskInterface) {
    case "virtio":
      return `virtio-blk-pci,drive=${drive}${bootIndex}`;
    case "nvme":
      return `nvme,drive=${drive},serial=keel-${drive}${bootIndex}`;
    case "sata":
      return `ide-hd,drive=${drive},bus=ide.${sataPort}${bootIndex}`;
  }
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
  const snapshot = spec.ephemeral ? ",snapshot=on" : "";
  const boot = spec.boot;
  if (boot.kind === "direct") {
    argv.push("-kernel", boot.boot.kernel, "-initrd", boot.boot.initrd);
    argv.push("-append", kernelCommandLine(boot.boot, boot.generation));
    argv.push("-drive", `file=${qemuValue(boot.image)},format=raw,if=virtio,readonly=on`);
    argv.push("-drive", `file=${qemuValue(boot.stateDisk)},format=qcow2,if=virtio${snapshot}`);
  } else {
    argv.push("-drive", `if=pflash,format=raw,unit=0,readonly=on,file=${qemuValue(ovmf.code)}`);
    argv.push("-drive", `if=pflash,format=raw,unit=1,file=${qemuValue(boot.efiVars)}`);
    argv.push("-drive", `file=${qemuValue(boot.disk)},format=qcow2,if=none,id=disk0${snapshot}`, "-device", diskDevice(v.diskInterface, "disk0", 0, true));
  }
  const sataBefore = boot.kind === "uefi" && v.diskInterface === "sata" ? 1 : 0;
  v.emptyDiskImages.forEach((disk, i) => {
    const sataPort = sataBefore + v.emptyDiskImages.slice(0, i).filter((d) => d.interface === "sata").length;
    argv.push("-drive", `file=${qemuValue(files.emptyDisks[i] ?? "")},format=qcow2,if=none,id=empty${i}${snapshot}`, "-device", diskDevice(disk.interface, `empty${i}`, sataPort, false));
  });
  const rules = [...v.forwardPorts, ...spec.extraForwards].map(forwardRule);
  argv.push("-netdev", ["user", "id=net0", ...rules].join(","), "-device", "virtio-net-pci,netdev=net0");
  // The host's entropy: without it, under TCG, the guest's random seed and first host key wait for the kernel's pool.
  argv.push("-device", "virtio-rng-pci");

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
