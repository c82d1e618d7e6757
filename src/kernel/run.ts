// `keel kernel run`: a kernel booted with a tiny userland — an initramfs of
// the host's static busybox whose init runs one command (or a shell), prints
// its output between markers on the serial console and powers off. The QEMU
// command line and the reading of the console are pure and unit-tested.
import type { Accelerator } from "../vm/qemu.js";
import type { CpioEntry } from "../steps/cpio.js";

/** What the console says around the command's output: the nonce keeps a command's own output from faking them. */
export function runMarkers(nonce: string): { readonly begin: string; readonly log: string; readonly end: string } {
  return { begin: `keel-run-${nonce}: begin`, log: `keel-run-${nonce}: kernel log`, end: `keel-run-${nonce}: exit` };
}

/** What a kernel log line looks like when the kernel found a bug in itself. */
export const kernelTrouble = /(Kernel panic - not syncing|Oops[:\s]|BUG: |WARNING: |general protection fault|Call Trace:)/;

/**
 * The init of the initramfs. /keel/marker holds the run's nonce; with
 * /keel/command it runs that, then the kernel log when the kernel complained,
 * then the exit code; without, a shell on the console. Either way it powers off.
 */
export function runInit(): string {
  return `#!/bin/sh
/bin/busybox --install -s /bin
export PATH=/bin HOME=/root TERM=linux
mkdir -p /proc /sys /dev /tmp /root /run
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
hostname keel
nonce=$(cat /keel/marker)
if [ -f /keel/command ]; then
  echo "keel-run-$nonce: begin"
  (cd /root && sh /keel/command) </dev/null 2>&1
  code=$?
  if dmesg | grep -qE '${kernelTrouble.source}'; then
    echo "keel-run-$nonce: kernel log"
    dmesg
  fi
  echo "keel-run-$nonce: exit $code"
else
  echo "keel: a shell in the kernel's tiny userland (busybox); exit powers the machine off."
  setsid cttyhack sh -l
fi
poweroff -f
`;
}

/** The archive's entries common to every run: busybox and the init. */
export function runUserland(busybox: Buffer): CpioEntry[] {
  return [
    ...["bin", "dev", "proc", "sys", "tmp", "root", "run"].map((d): CpioEntry => ({ kind: "directory", path: d })),
    { kind: "file", path: "init", data: Buffer.from(runInit()), mode: 0o755 },
    { kind: "file", path: "bin/busybox", data: busybox, mode: 0o755 },
    { kind: "symlink", path: "bin/sh", target: "busybox" },
  ];
}

/** The entries of one run: its nonce and its command (none: a shell). */
export function runRequest(nonce: string, command: string | undefined): CpioEntry[] {
  return [
    { kind: "directory", path: "keel" },
    { kind: "file", path: "keel/marker", data: Buffer.from(`${nonce}\n`) },
    ...(command === undefined ? [] : [{ kind: "file", path: "keel/command", data: Buffer.from(`${command}\n`) } as const]),
  ];
}

export interface KernelRunSpec {
  readonly kernel: string;
  readonly initrd: string;
  readonly accel: Accelerator;
  readonly memory: number;
  /** A shell on the terminal (QEMU's stdio in raw mode), else the console is read by keel. */
  readonly interactive: boolean;
  /** More kernel parameters, after keel's. */
  readonly append: readonly string[];
  /** The firmware, when not QEMU's default (SeaBIOS): qboot starts a kernel 0.2 s sooner under TCG. */
  readonly bios?: string;
}

/** QEMU's minimal firmware that only loads a kernel (Debian's qemu-system-data ships it). */
export const qbootPath = "/usr/share/qemu/qboot.rom";

/** QEMU for a run: no disks, no network, the serial console on stdio; a panic ends QEMU at once. */
export function kernelRunArgv(spec: KernelRunSpec): string[] {
  const params = ["console=ttyS0", "panic=-1", "rdinit=/init", ...(spec.interactive ? [] : ["quiet"]), ...spec.append];
  const argv = ["qemu-system-x86_64", "-machine", `pc,accel=${spec.accel}`];
  if (spec.accel === "kvm") argv.push("-cpu", "host");
  if (spec.bios !== undefined) argv.push("-bios", spec.bios);
  argv.push("-m", String(spec.memory), "-smp", "1", "-nodefaults", "-no-user-config", "-no-reboot", "-display", "none");
  argv.push("-kernel", spec.kernel, "-initrd", spec.initrd, "-append", params.join(" "));
  // Interactive: Ctrl-A X quits, Ctrl-C goes to the guest.
  if (spec.interactive) argv.push("-chardev", "stdio,id=console,mux=on,signal=off", "-serial", "chardev:console", "-mon", "chardev=console,mode=readline");
  else argv.push("-serial", "stdio");
  return argv;
}

export interface RunOutcome {
  /** The command's exit code, undefined when the machine stopped before it said one. */
  readonly exitCode: number | undefined;
  /** The kernel's own complaint (panic, oops, BUG, WARNING) with the lines after it, or undefined. */
  readonly trouble: string | undefined;
}

/**
 * Reads the console as it arrives: `emit` gets the command's output, line
 * by line, as soon as the line is complete; `finish` reads what it all meant.
 */
export class ConsoleReader {
  private partial = "";
  private state: "boot" | "command" | "log" | "done" = "boot";
  /** Every line, with whether it was the command's own output (never taken for the kernel's complaint). */
  private readonly lines: { readonly text: string; readonly command: boolean }[] = [];
  private exitCode: number | undefined;
  private readonly markers: ReturnType<typeof runMarkers>;

  constructor(
    nonce: string,
    private readonly emit: (line: string) => void,
  ) {
    this.markers = runMarkers(nonce);
  }

  feed(text: string): void {
    const lines = (this.partial + text).split("\n");
    this.partial = lines.pop() ?? "";
    for (const raw of lines) this.line(raw.replace(/\r$/, ""));
  }

  private line(line: string): void {
    this.lines.push({ text: line, command: this.state === "command" && !line.startsWith("keel-run-") });
    if (line === this.markers.begin) this.state = "command";
    else if (line === this.markers.log) this.state = "log";
    else if (line.startsWith(`${this.markers.end} `)) {
      this.exitCode = Number(line.slice(this.markers.end.length + 1));
      this.state = "done";
    } else if (this.state === "command") this.emit(line);
  }

  finish(): RunOutcome {
    if (this.partial !== "") this.line(this.partial.replace(/\r$/, ""));
    this.partial = "";
    const kernel = this.lines.filter((l) => !l.command && !l.text.startsWith("keel-run-")).map((l) => l.text);
    const start = kernel.findIndex((l) => kernelTrouble.test(l));
    const trouble = start < 0 ? undefined : kernel.slice(start, start + 40).join("\n");
    return { exitCode: this.exitCode, trouble };
  }

  /** The whole console, for the log. */
  text(): string {
    return [...this.lines.map((l) => l.text), this.partial].join("\n");
  }
}

/** The input and the system `keel kernel run --source DIR` builds when it names no system. */
export const treeRunInput = "linux";
export const treeRunSystem = "kernel-run";

/**
 * What a tree is configured with when no system is named: tinyconfig and
 * what the tiny userland needs, everything built in (a few minutes cold on
 * two cores). More with --kconfig; the release is the tree's own.
 */
export const treeRunModule = {
  boot: {
    kernel: {
      source: treeRunInput,
      baseConfig: "tinyconfig",
      settings: {
        // The initramfs and busybox in it; its init mounts proc, sysfs, devtmpfs and a tmpfs.
        BLK_DEV_INITRD: "y", BINFMT_ELF: "y", BINFMT_SCRIPT: "y", PROC_FS: "y", SYSFS: "y", DEVTMPFS: "y", SHMEM: "y", TMPFS: "y",
        // The serial console keel reads, the kernel's log (dmesg) and its complaints.
        TTY: "y", SERIAL_8250: "y", SERIAL_8250_CONSOLE: "y", PRINTK: "y", BUG: "y",
        // `poweroff -f` ends QEMU's pc machine through ACPI.
        PCI: "y", ACPI: "y",
        // LZ4, not tinyconfig's XZ: under TCG the kernel decompresses itself 0.6 s sooner.
        KERNEL_LZ4: "y",
      },
    },
  },
  // The initramfs is the root: there is no other.
  fileSystems: { "/": { device: "rootfs", fsType: "rootfs" } },
};
