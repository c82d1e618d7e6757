// Boot to a login: `keel run qemu --detach --wait-ssh` on the seed's qemu
// system (built beforehand, not timed; it returns once root can log in), from
// a fresh VM disk (--reset: the first boot copies /var into the state and
// makes the host key) and again with that state kept, next to the same kernel
// on the same QEMU machine reaching a busybox init (an initramfs whose /init
// prints a line and powers off), measured in the same run, alternately. The
// ratios are what systemd, the network and sshd cost over the kernel itself.
// Target (issue 11): ratio ≤ 2.5. Run it on an otherwise idle machine.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { busyboxPath } from "../src/host/facts.ts";
import { cpioArchive } from "../src/steps/cpio.ts";
import { keelArgv, median, run, seed } from "./common.ts";

const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const scratch = mkdtempSync(path.join(os.tmpdir(), "keel-bench-boot-"));
const env = { ...process.env, XDG_STATE_HOME: path.join(scratch, "state"), KEEL_STORE: process.env.KEEL_STORE ?? path.join(scratch, "store") };
const marker = "keel-bench: busybox init reached";

/** Seconds from QEMU's start to the busybox init's line on the serial console. */
async function busyboxBoot(kernel: string, initramfs: string, machine: readonly string[]): Promise<number> {
  const started = performance.now();
  const qemu = spawn("qemu-system-x86_64", [...machine, "-nodefaults", "-display", "none", "-kernel", kernel, "-initrd", initramfs, "-append", "console=ttyS0", "-serial", "stdio"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let output = "";
  try {
    return await new Promise<number>((resolve, reject) => {
      qemu.stdout.on("data", (chunk: Buffer) => {
        output += chunk.toString("latin1");
        if (output.includes(marker)) resolve((performance.now() - started) / 1000);
      });
      qemu.on("exit", () => reject(new Error(`QEMU exited before busybox init printed its line:\n${output.slice(-2000)}`)));
    });
  } finally {
    qemu.kill("SIGKILL");
  }
}

try {
  // The kernel and QEMU machine keel boots, from the command line it would run.
  const command = run(keelArgv("run", "qemu", "--dry-run", "--accel", "tcg"), { cwd: seed, env }).stdout;
  const pick = (pattern: RegExp) => pattern.exec(command)?.[1] ?? "";
  const kernel = pick(/-kernel (\S+)/);
  const machine = ["-machine", pick(/-machine (\S+)/), "-m", pick(/-m (\S+)/), "-smp", pick(/-smp (\S+)/)];
  const initramfs = path.join(scratch, "busybox.cpio.gz");
  const init = `#!/bin/busybox sh\n/bin/busybox echo "${marker}"\n/bin/busybox poweroff -f\n`;
  writeFileSync(
    initramfs,
    cpioArchive([
      { kind: "directory", path: "bin" },
      { kind: "file", path: "bin/busybox", data: await readFile(busyboxPath), mode: 0o755 },
      { kind: "file", path: "init", data: Buffer.from(init), mode: 0o755 },
    ]),
  );
  const fresh: number[] = [];
  const again: number[] = [];
  const busyboxTimes: number[] = [];
  const boot = (...more: string[]) => {
    const seconds = run(keelArgv("run", "qemu", "--detach", "--wait-ssh", "--accel", "tcg", ...more), { cwd: seed, env }).seconds;
    run(keelArgv("vm", "stop", "qemu"), { cwd: seed, env });
    return seconds;
  };
  for (let round = 0; round < rounds; round++) {
    busyboxTimes.push(await busyboxBoot(kernel, initramfs, machine));
    fresh.push(boot("--reset"));
    again.push(boot());
  }
  const busybox = median(busyboxTimes);
  const runs = (times: readonly number[]) => `${median(times).toFixed(1)} s   (runs: ${times.map((t) => t.toFixed(1)).join(" ")})`;
  console.log(`same kernel to a busybox init:                         ${runs(busyboxTimes)}`);
  console.log(`keel run qemu --wait-ssh, fresh VM disk (--reset):     ${runs(fresh)}   ratio ${(median(fresh) / busybox).toFixed(2)}`);
  console.log(`keel run qemu --wait-ssh, its state kept:              ${runs(again)}   ratio ${(median(again) / busybox).toFixed(2)}   (target ≤ 2.5)`);
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
