// What the type check adds to a command on a config with no errors: `keel
// systems` of the seed with the check (cached after the first run, as on
// every command after an edit) and with --no-typecheck, alternating in one
// run; and the cold check, right after an edit. Target: the cached check
// costs nothing a user notices (it re-hashes the config files).
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { keelArgv, median, seed, timed } from "./common.ts";

const cache = mkdtempSync(path.join(os.tmpdir(), "keel-bench-cache-"));
const env = { ...process.env, XDG_CACHE_HOME: cache };
const runs = Number(process.env.RUNS ?? 11);
const checked = keelArgv("systems");
const unchecked = keelArgv("systems", "--no-typecheck");

const cold: number[] = [];
for (let i = 0; i < 3; i++) {
  rmSync(path.join(cache, "keel/typecheck"), { recursive: true, force: true });
  cold.push(timed(checked, { cwd: seed, env }));
}
const withCheck: number[] = [];
const without: number[] = [];
for (let i = 0; i < runs; i++) {
  withCheck.push(timed(checked, { cwd: seed, env }));
  without.push(timed(unchecked, { cwd: seed, env }));
}
console.log(`keel systems, check cached, median of ${runs}:  ${median(withCheck).toFixed(3)} s`);
console.log(`keel systems --no-typecheck, median of ${runs}: ${median(without).toFixed(3)} s`);
console.log(`added by the cached check:                ${(median(withCheck) - median(without)).toFixed(3)} s`);
console.log(`the check after an edit (cold), median of 3:  ${median(cold).toFixed(2)} s`);
rmSync(cache, { recursive: true, force: true });
