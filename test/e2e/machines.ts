// Machines booted by plain QEMU under OVMF from a disk, as real hardware
// boots (no keel run): what the image, install and deploy tests share. Each
// machine's sshd is forwarded from 127.0.0.1:<port>; its console goes to a
// file; a guest reboot keeps QEMU (and the disk) running.
import assert from "node:assert/strict";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, readFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { ovmf } from "../../src/vm/qemu.ts";

const run = promisify(execFile);

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** How `boot` attaches its disk: the drive's format and options, and the devices that carry it. */
export const attachments = {
  virtio: { drive: "format=qcow2", devices: ["virtio-blk-pci,drive=disk0,bootindex=1"] },
  nvme: { drive: "format=qcow2", devices: ["nvme,drive=disk0,serial=x,bootindex=1"] },
  // An ISO as a CD in the q35's AHCI drive, and as a USB stick behind an xHCI controller.
  cdrom: { drive: "format=raw,media=cdrom,readonly=on", devices: ["ide-cd,drive=disk0,bus=ide.0,bootindex=1"] },
  usb: { drive: "format=raw,readonly=on", devices: ["qemu-xhci,id=xhci", "usb-storage,bus=xhci.0,drive=disk0,bootindex=1"] },
} as const;

export interface Machine {
  readonly name: string;
  readonly port: number;
  readonly child: ChildProcess;
  readonly console: string;
  /** What QEMU itself printed (its errors). */
  readonly errors: () => string;
  readonly exited: Promise<void>;
}

/**
 * Boots `disk` under OVMF with 1 GiB and `cpus` vCPUs; `scratch` holds its
 * EFI variables (kept across boots of the same name) and console log. An
 * i6300esb watchdog stands in for a board's.
 */
export function boot(scratch: string, name: string, disk: string, device: keyof typeof attachments, port: number, cpus = 2): Machine {
  const vars = path.join(scratch, `${name}-efivars.fd`);
  copyFileSync(ovmf.vars, vars);
  const console = path.join(scratch, `${name}-console.log`);
  const attached = attachments[device];
  const child = spawn(
    "qemu-system-x86_64",
    [
      ...["-machine", "q35,accel=tcg", "-m", "1024", "-smp", String(cpus), "-nodefaults", "-no-user-config", "-display", "none"],
      ...["-drive", `if=pflash,format=raw,unit=0,readonly=on,file=${ovmf.code}`, "-drive", `if=pflash,format=raw,unit=1,file=${vars}`],
      ...["-drive", `file=${disk},${attached.drive},if=none,id=disk0`, ...attached.devices.flatMap((d) => ["-device", d])],
      ...["-netdev", `user,id=net0,hostfwd=tcp:127.0.0.1:${port}-:22`, "-device", "virtio-net-pci,netdev=net0", "-device", "i6300esb"],
      ...["-serial", `file:${console}`],
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk));
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  return { name, port, child, console, errors: () => stderr, exited };
}

/** Powers the machine off at once (QEMU quits on SIGTERM, flushing its disk; SIGKILL pulls the plug). */
export async function stop(machine: Machine, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  if (machine.child.exitCode === null && machine.child.signalCode === null) machine.child.kill(signal);
  await machine.exited;
}

/** The last lines of the machine's console. */
export function consoleTail(machine: Machine, lines = 30): string {
  return readFileSync(machine.console, "utf8").replace(/\r/g, "").trimEnd().split("\n").slice(-lines).join("\n");
}

/** ssh's options for the test's key; `knownHosts` null trusts any host key (each boot of a fresh image makes new ones). */
export function sshOptions(port: number, key: string, knownHosts: string | null): string[] {
  return [
    ...["-i", key, "-p", String(port), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"],
    ...(knownHosts === null ? ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"] : ["-o", "StrictHostKeyChecking=accept-new", "-o", `UserKnownHostsFile=${knownHosts}`]),
  ];
}

/** Runs `command` (a shell line) as root on the machine with the test's key, within `seconds`. */
export async function ssh(port: number, key: string, command: string, seconds = 120, knownHosts: string | null = null): Promise<string> {
  const { stdout } = await run("ssh", [...sshOptions(port, key, knownHosts), "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5", "root@127.0.0.1", command], { encoding: "utf8", timeout: seconds * 1000 });
  return stdout;
}

/** Waits until the machine's sshd lets the test's key in; fails with its console if it stops or takes `limit` s. Returns the seconds since `started`. */
export async function waitForSsh(machine: Machine, key: string, started: number, limit = 300, knownHosts: string | null = null): Promise<number> {
  for (;;) {
    if (machine.child.exitCode !== null || machine.child.signalCode !== null) assert.fail(`${machine.name}'s QEMU stopped before SSH answered: ${machine.errors()}\nIts console:\n${consoleTail(machine)}`);
    try {
      await ssh(machine.port, key, "true", 20, knownHosts);
      return (performance.now() - started) / 1000;
    } catch {
      if (performance.now() - started > limit * 1000) assert.fail(`${machine.name} did not answer SSH within ${limit} s. Its console:\n${consoleTail(machine)}`);
      await sleep(2000);
    }
  }
}
