// A cold `keel build` of the seed's qemu system into an empty store, next to a
// plain mmdebstrap call that makes the same root filesystem (same suite,
// mirror, variant and packages, no keel hooks). The ratio is keel's overhead.
// keel's figure includes the kernel step (download, unpack, depmod) and the
// initrd; each step's own time is shown too. Target: keel ≤ 1.2 × mmdebstrap.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { BuildEvent } from "../src/steps/realize.ts";
import { basePackages } from "../src/steps/rootfs.ts";
import { hostMirror } from "../src/host/facts.ts";
import { keelArgv, run, seed } from "./common.ts";

const scratch = mkdtempSync(path.join(os.tmpdir(), "keel-bench-"));
const env = { ...process.env, KEEL_STORE: path.join(scratch, "store") };
try {
  const config = JSON.parse(run(keelArgv("eval", "qemu", "--json"), { cwd: seed }).stdout) as {
    packages: string[];
    distro: { suite: string; mirror: string | null; components: string[] };
  };
  const packages = [...new Set([...basePackages, ...config.packages])];
  const plain = run([
    "mmdebstrap",
    "--mode=auto",
    "--variant=minbase",
    `--components=${config.distro.components.join(",")}`,
    `--include=${packages.join(",")}`,
    config.distro.suite,
    path.join(scratch, "plain.tar"),
    config.distro.mirror ?? hostMirror(),
  ]).seconds;
  const keel = run(keelArgv("build", "qemu", "--no-link", "--json"), { cwd: seed, env });
  const steps = keel.stdout
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as BuildEvent)
    .flatMap((e) => (e.type === "done" ? [`${e.step} ${e.seconds.toFixed(1)} s`] : []));
  console.log(`plain mmdebstrap:          ${plain.toFixed(1)} s`);
  console.log(`keel build qemu (cold):    ${keel.seconds.toFixed(1)} s   (${steps.join(", ")})`);
  console.log(`ratio keel / mmdebstrap:   ${(keel.seconds / plain).toFixed(2)}   (target ≤ 1.20)`);
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
