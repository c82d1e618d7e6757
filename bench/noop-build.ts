// A no-op `keel build` of the seed's qemu system: everything is in the store,
// so this is keel's own cost (start-up, loading and checking the config,
// evaluation, planning). Target: at most 2.5 times a bare `node -e 0` on the
// same machine, measured in the same run, alternating so that both see the
// same load.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { keelArgv, median, seed, timed } from "./common.ts";

const target = 2.5;
const store = process.env.KEEL_STORE ?? mkdtempSync(path.join(os.tmpdir(), "keel-bench-store-"));
const env = { ...process.env, KEEL_STORE: store };
const runs = Number(process.env.RUNS ?? 11);
const build = keelArgv("build", "qemu", "--no-link");

const first = timed(build, { cwd: seed, env });
const noop: number[] = [];
const node: number[] = [];
for (let i = 0; i < runs; i++) {
  node.push(timed([process.execPath, "-e", "0"], { env }));
  noop.push(timed(build, { cwd: seed, env }));
}
const seconds = (values: readonly number[]) => values.map((s) => s.toFixed(3)).join(" ");
const ratio = median(noop) / median(node);
console.log(`first build (fills the store):  ${first.toFixed(2)} s`);
console.log(`no-op build, median of ${runs}:     ${median(noop).toFixed(3)} s   (runs: ${seconds(noop)})`);
console.log(`node -e 0, median of ${runs}:       ${median(node).toFixed(3)} s   (runs: ${seconds(node)})`);
console.log(`no-op build / node -e 0:        ${ratio.toFixed(2)}   (target: at most ${target}; ${ratio <= target ? "met" : "missed"})`);
if (process.env.KEEL_STORE === undefined) rmSync(store, { recursive: true, force: true });
