// `keel eval <system> --json` of the seed's two systems: what evaluating the
// module system costs (the config's type check left out: --no-typecheck; its
// compile is cached after the first run). Median of RUNS (5) each, and the
// peak memory of one run. With KEEL_BASELINE=<another keel checkout, built>,
// that keel runs alternately with this one on the same seed and the ratio is
// printed: issue 15's "no slower than before".
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { median, root, seed } from "./common.ts";

const runs = Number(process.env.RUNS ?? 5);
const baseline = process.env.KEEL_BASELINE;
const scratch = mkdtempSync(path.join(os.tmpdir(), "keel-bench-eval-"));

/** The seed copied for one keel: its config imports that keel, not whichever Node would find from examples/seed. */
function seedFor(keelRoot: string, name: string): string {
  const project = path.join(scratch, name);
  cpSync(seed, project, { recursive: true, filter: (f) => !path.basename(f).startsWith("result-") });
  mkdirSync(path.join(project, "node_modules"));
  symlinkSync(keelRoot, path.join(project, "node_modules/keel"));
  return project;
}

const keels = [
  { name: "this keel", bin: path.join(root, "bin/keel.js"), project: seedFor(root, "this") },
  ...(baseline === undefined ? [] : [{ name: "baseline", bin: path.join(baseline, "bin/keel.js"), project: seedFor(path.resolve(baseline), "baseline") }]),
];

/** Seconds and peak resident kilobytes (GNU time's %M) of one evaluation. */
function evaluate(keel: (typeof keels)[number], system: string): { seconds: number; kilobytes: number } {
  const started = performance.now();
  const result = spawnSync("/usr/bin/time", ["-f", "%M", process.execPath, keel.bin, "--no-typecheck", "eval", system, "--json"], { cwd: keel.project, encoding: "utf8", maxBuffer: 64 << 20 });
  const seconds = (performance.now() - started) / 1000;
  if (result.status !== 0) {
    process.stderr.write(`keel eval ${system} failed:\n${result.stderr}`);
    process.exit(1);
  }
  return { seconds, kilobytes: Number(result.stderr.trim().split("\n").at(-1)) };
}

for (const system of ["qemu", "aethelred"]) {
  const times = new Map(keels.map((k) => [k.name, [] as number[]]));
  const memory = new Map<string, number>();
  for (const keel of keels) evaluate(keel, system);
  for (let i = 0; i < runs; i++) {
    for (const keel of keels) {
      const { seconds, kilobytes } = evaluate(keel, system);
      times.get(keel.name)?.push(seconds);
      memory.set(keel.name, Math.max(memory.get(keel.name) ?? 0, kilobytes));
    }
  }
  for (const keel of keels) {
    const values = times.get(keel.name) ?? [];
    console.log(`keel eval ${system} --json, ${keel.name.padEnd(9)} median of ${runs}: ${median(values).toFixed(3)} s (runs: ${values.map((s) => s.toFixed(3)).join(" ")}), peak ${((memory.get(keel.name) ?? 0) / 1024).toFixed(0)} MiB`);
  }
  if (baseline !== undefined) console.log(`  this / baseline: ${(median(times.get("this keel") ?? []) / median(times.get("baseline") ?? [])).toFixed(2)}`);
}
rmSync(scratch, { recursive: true, force: true });
