// ccache on kernel builds: the seed's small guest kernel (kernels.small, from
// linux-source-6.1) built four ways, each with `keel build qemu kernel` so
// that only the kernel step runs:
//   (a) cold: empty ccache, fresh build directory
//   (b) warm: the cache (a) filled, a fresh build directory
//   (c) no-op: nothing changed (the kernel step is not even started)
//   (d) one .c file touched in the tree
// The tree is a path input (a developer's own tree, used in place), so that
// (d) is an edit keel sees. Targets: (a)/(b) ≥ 10; (d) < 10% of (a).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { keelArgv, run, smallKernelSeed } from "./common.ts";

const scratch = mkdtempSync(path.join(os.tmpdir(), "keel-bench-kernel-"));
const project = path.join(scratch, "seed");
const tarball = process.env.LINUX_TARBALL ?? "/usr/src/linux-source-6.1.tar.xz";

smallKernelSeed(project);
const config = path.join(project, "keel.config.ts");
writeFileSync(config, readFileSync(config, "utf8").replace(/linux: \{[^}]*\}/, 'linux: { type: "path", path: "./linux" }'));
mkdirSync(path.join(project, "linux"));
run(["tar", "-xf", tarball, "-C", path.join(project, "linux"), "--strip-components=1"]);

const envFor = (store: string) => ({
  ...process.env,
  KEEL_STORE: path.join(scratch, store),
  KEEL_CCACHE_DIR: path.join(scratch, "ccache"),
  XDG_CACHE_HOME: path.join(scratch, "cache"),
});

interface Measured {
  readonly wall: number;
  readonly note: string;
}

function build(store: string): Measured {
  const { seconds, stdout } = run(keelArgv("build", "qemu", "kernel", "--json", "--no-typecheck"), { cwd: project, env: envFor(store) });
  const done = stdout
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as { type: string; step?: string; status?: string; note?: string })
    .find((e) => e.type === "done" && e.step === "kernel");
  return { wall: seconds, note: done?.status === "built" ? (done.note ?? "") : "not built (cached)" };
}

const cold = build("a");
const warm = build("b");
const noop = build("b");
const file = path.join(project, "linux/kernel/fork.c");
const now = new Date();
utimesSync(file, now, now);
const touched = build("b");

const line = (label: string, m: Measured) => console.log(`${label.padEnd(44)} ${m.wall.toFixed(1).padStart(7)} s   ${m.note}`);
line("(a) cold: empty ccache, fresh build dir", cold);
line("(b) warm ccache, fresh build dir", warm);
line("(c) no-op rebuild", noop);
line("(d) rebuild after touching kernel/fork.c", touched);
console.log(`cold / warm:                                  ${(cold.wall / warm.wall).toFixed(1)}×   (target ≥ 10×; published reference 6.5×)`);
console.log(`touched / cold:                               ${((touched.wall / cold.wall) * 100).toFixed(1)}%  (target < 10%)`);
rmSync(scratch, { recursive: true, force: true });
