// A no-op `keel build` of the seed's qemu system: everything is in the store,
// so this is keel's own cost (start-up, loading and checking the config,
// evaluation, planning). Target: < 1 s.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { keelArgv, median, seed, timed } from "./common.ts";

const store = process.env.KEEL_STORE ?? mkdtempSync(path.join(os.tmpdir(), "keel-bench-store-"));
const env = { ...process.env, KEEL_STORE: store };
const runs = Number(process.env.RUNS ?? 5);

const first = timed(keelArgv("build", "qemu", "--no-link"), { cwd: seed, env });
const noop = Array.from({ length: runs }, () => timed(keelArgv("build", "qemu", "--no-link"), { cwd: seed, env }));
const version = timed(keelArgv("--version"), { env });
console.log(`first build (fills the store):     ${first.toFixed(2)} s`);
console.log(`no-op build, median of ${runs}:         ${median(noop).toFixed(3)} s   (runs: ${noop.map((s) => s.toFixed(3)).join(" ")})`);
console.log(`keel --version (node start-up):    ${version.toFixed(3)} s`);
console.log(`no-op build / target 1 s:          ${(median(noop) / 1).toFixed(2)}`);
if (process.env.KEEL_STORE === undefined) rmSync(store, { recursive: true, force: true });
