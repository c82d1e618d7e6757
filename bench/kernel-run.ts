// The kernel developer's loop under TCG (issue 13): `keel kernel run qemu
// --exec 'uname -r'` five times on a built kernel (target ≤ 3 s; virtme-ng's
// published figure without KVM is 9.8 s), then one line added to
// init/main.c → `keel kernel run --exec 'dmesg | grep <marker>'` showing it.
// The project is $KEEL_BENCH_PROJECT (the seed with kernels.small and a
// `keel kernel checkout qemu`), else one kept in $TMPDIR/keel-bench-kernel-run
// and made on the first run, whose first build takes minutes.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { keelArgv, median, run, smallKernelSeed } from "./common.ts";

const project = process.env.KEEL_BENCH_PROJECT ?? path.join(os.tmpdir(), "keel-bench-kernel-run");
const keel = (...args: string[]) => run(keelArgv(...args, "--no-typecheck"), { cwd: project });

if (!existsSync(path.join(project, "keel.config.ts"))) smallKernelSeed(project);
const override = path.join(project, "keel.override.json");
if (!existsSync(override)) keel("kernel", "checkout", "qemu", "./linux");
const tree = path.resolve(project, (JSON.parse(readFileSync(override, "utf8")) as { inputs: { linux: { path: string } } }).inputs.linux.path);
const first = keel("kernel", "run", "qemu", "--exec", "uname -r", "--timeout", "1800");
console.log(`first run (builds what changed since the last):   ${first.seconds.toFixed(1).padStart(6)} s   ${first.stdout.trim()}`);

const runs = Array.from({ length: 5 }, () => keel("kernel", "run", "qemu", "--exec", "uname -r"));
console.log(`keel kernel run --exec 'uname -r', 5 runs:          ${runs.map((r) => r.seconds.toFixed(2)).join(" ")} s`);
console.log(`  median                                            ${median(runs.map((r) => r.seconds)).toFixed(2).padStart(6)} s   (target ≤ 3 s under TCG; virtme-ng without KVM: 9.8 s)`);

const main = path.join(tree, "init/main.c");
const source = readFileSync(main, "utf8");
const marker = `keel-bench-${Date.now()}`;
const anchor = '\tpr_notice("%s", linux_banner);\n';
if (!source.includes(anchor)) throw new Error(`${main} has no line ${JSON.stringify(anchor)} to add a printk after`);
const started = performance.now();
writeFileSync(main, source.replace(anchor, `${anchor}\tpr_notice("${marker}\\n");\n`));
try {
  const edited = keel("kernel", "run", "qemu", "--exec", `dmesg | grep ${marker}`);
  const seconds = (performance.now() - started) / 1000;
  if (!edited.stdout.includes(marker)) throw new Error(`the guest's dmesg lacks ${marker}:\n${edited.stdout}`);
  console.log(`one printk added to init/main.c → its line in dmesg: ${seconds.toFixed(1).padStart(6)} s   ${edited.stdout.trim()}`);
} finally {
  writeFileSync(main, source);
}
