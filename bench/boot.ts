// Boot to SSH: `keel run qemu --detach --wait-ssh` on the seed's qemu system
// (built beforehand, not timed), next to a hand-written QEMU command that boots
// the same kernel, initrd and image and is polled for sshd's banner the same
// way. Both start from an empty VM disk, so both pay the first boot's host key.
// The ratio is keel's overhead. Target: keel ≤ 12 s under TCG.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { sshAnswers } from "../src/vm/machine.ts";
import { keelArgv, median, run, seed } from "./common.ts";

const rounds = Number(process.env.BENCH_ROUNDS ?? 2);
const scratch = mkdtempSync(path.join(os.tmpdir(), "keel-bench-boot-"));
const env = { ...process.env, XDG_STATE_HOME: path.join(scratch, "state"), KEEL_STORE: process.env.KEEL_STORE ?? path.join(scratch, "store") };
const plainPort = 2299;

async function plainBoot(boot: { kernel: string; initrd: string }, image: string): Promise<number> {
  const disk = path.join(scratch, "plain.qcow2");
  run(["mke2fs", "-q", "-F", "-t", "ext4", path.join(scratch, "plain.raw"), "4096M"]);
  run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", path.join(scratch, "plain.raw"), disk]);
  const started = performance.now();
  const qemu = spawn("qemu-system-x86_64", [
    "-machine", "q35,accel=tcg", "-m", "1024", "-smp", "2", "-nodefaults", "-display", "none",
    "-kernel", boot.kernel, "-initrd", boot.initrd, "-append", "console=ttyS0 root=/dev/vda keel.state=/dev/vdb",
    "-drive", `file=${image},format=raw,if=virtio,readonly=on`, "-drive", `file=${disk},format=qcow2,if=virtio`,
    "-netdev", `user,id=net0,hostfwd=tcp:127.0.0.1:${plainPort}-:22`, "-device", "virtio-net-pci,netdev=net0",
    "-serial", `file:${path.join(scratch, "plain-console.log")}`,
  ], { stdio: "ignore" });
  try {
    // Overlapping attempts, as keel's --wait-ssh makes them.
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve, reject) => {
      timer = setInterval(() => {
        if (performance.now() - started > 300_000) reject(new Error("plain QEMU did not answer SSH in 300 s"));
        void sshAnswers("127.0.0.1", plainPort).then((yes) => yes && resolve());
      }, 250);
    }).finally(() => clearInterval(timer));
    return (performance.now() - started) / 1000;
  } finally {
    qemu.kill("SIGKILL");
  }
}

try {
  // The files keel boots, from the command line it would run.
  const command = run(keelArgv("run", "qemu", "--dry-run", "--accel", "tcg"), { cwd: seed, env }).stdout;
  const pick = (pattern: RegExp) => pattern.exec(command)?.[1] ?? "";
  const boot = { kernel: pick(/-kernel (\S+)/), initrd: pick(/-initrd (\S+)/) };
  const image = pick(/-drive file=([^,]+),format=raw/);
  const keelTimes: number[] = [];
  const plainTimes: number[] = [];
  for (let round = 0; round < rounds; round++) {
    keelTimes.push(run(keelArgv("run", "qemu", "--detach", "--wait-ssh", "--reset", "--accel", "tcg"), { cwd: seed, env }).seconds);
    run(keelArgv("vm", "stop", "qemu", "--force"), { cwd: seed, env });
    plainTimes.push(await plainBoot(boot, image));
  }
  const keel = median(keelTimes);
  const plain = median(plainTimes);
  console.log(`keel run qemu --detach --wait-ssh:  ${keel.toFixed(1)} s   (runs: ${keelTimes.map((t) => t.toFixed(1)).join(" ")})`);
  console.log(`plain qemu, same files, to banner:  ${plain.toFixed(1)} s   (runs: ${plainTimes.map((t) => t.toFixed(1)).join(" ")})`);
  console.log(`ratio keel / plain qemu:            ${(keel / plain).toFixed(2)}`);
  console.log(`keel / target 12 s:                 ${(keel / 12).toFixed(2)}`);
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
