// `keel doctor`, ccache half (the seed's `nix run .#hello`): compile a small
// program twice through exactly the compiler and environment keel builds
// kernels with, run Kbuild's own compiler and assembler probes through it, and
// say what to fix when the second compile does not hit the cache.
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, unlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { compiler, ccacheDir, parseStatsLog } from "../steps/ccache.js";
import { kbuildEnv } from "../steps/kbuild.js";
import { Store } from "../store/store.js";
import type { Check } from "./doctor.js";
import { exec, showCommand } from "./exec.js";
import { debianArch } from "./facts.js";

const wrapper = showCommand(compiler);

/** Whether the cache directory can be made and written, as the user keel runs as. */
async function writable(dir: string): Promise<string | undefined> {
  try {
    await mkdir(dir, { recursive: true });
    const probe = path.join(dir, `.keel-doctor-${process.pid}`);
    await writeFile(probe, "");
    await unlink(probe);
    return undefined;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code ?? (error as Error).message;
  }
}

async function kbuildProbe(name: string, script: string, env: NodeJS.ProcessEnv, expected: RegExp, what: string): Promise<Check> {
  const result = await exec(["sh", script, ...compiler], { env, nothrow: true });
  const output = result.stdout.trim();
  if (result.exitCode === 0 && expected.test(output)) return { name, status: "ok", detail: `${path.basename(script)} says "${output}"` };
  return {
    name,
    status: "fail",
    detail:
      `Kbuild's ${path.basename(script)} run through \`${wrapper}' printed "${output || result.stderr.trim()}" (exit ${result.exitCode}), so Kbuild would say the ${what} is not supported. ` +
      `Fix: run \`${showCommand(["sh", script, ...compiler])}' to see why; something that prints to standard output (a wrapper script, a ccache prefix_command) or a broken gcc/binutils is usually the cause`,
  };
}

export async function ccacheChecks(env: NodeJS.ProcessEnv, store: string): Promise<Check[]> {
  const version = await exec(["ccache", "--version"], { nothrow: true }).catch(() => undefined);
  if (version === undefined || version.exitCode !== 0) {
    return [{ name: "ccache", status: "fail", detail: "not found; keel compiles kernels through it (Debian package ccache)", packages: ["ccache"] }];
  }
  const number = /ccache version (\S+)/.exec(version.stdout)?.[1] ?? "present";
  const statsLog = await exec(["ccache", "-k", "stats_log"], { nothrow: true });
  if (statsLog.exitCode !== 0) {
    return [{ name: "ccache", status: "fail", detail: `${number} is too old: it has no stats_log, which keel reads each build's hit rate from. Fix: install ccache 4.4 or newer (Debian 12 has 4.7)` }];
  }
  const checks: Check[] = [{ name: "ccache", status: "ok", detail: number }];
  const dir = ccacheDir(env);
  const problem = await writable(dir);
  if (problem !== undefined) {
    checks.push({
      name: "ccache directory",
      status: "fail",
      detail: `${dir} is not writable (${problem}), so ccache would fail every kernel compile ("Failed to create directory"). Fix: \`chown -R ${os.userInfo().username} ${dir}\`, or point KEEL_CCACHE_DIR at a directory you own`,
    });
    return checks;
  }
  checks.push({ name: "ccache directory", status: "ok", detail: dir });
  checks.push(await helloTwice(env));
  // A Linux source in the store holds Kbuild's probes.
  const asVersion = await new Store(store).findFile("source-", "scripts/as-version.sh");
  const scripts = asVersion === undefined ? undefined : path.dirname(asVersion);
  const probeEnv = kbuildEnv(env, { src: os.tmpdir(), obj: os.tmpdir() }, debianArch());
  if (scripts === undefined) {
    checks.push({ name: "Kbuild probes", status: "notice", detail: "not run: no kernel source in the store yet (building a system with boot.kernel.source fetches one)" });
  } else {
    checks.push(await kbuildProbe("Kbuild compiler probe", path.join(scripts, "cc-version.sh"), probeEnv, /^GCC \d+/, "compiler"));
    checks.push(await kbuildProbe("Kbuild assembler probe", path.join(scripts, "as-version.sh"), probeEnv, /^GNU \d+/, "assembler"));
  }
  return checks;
}

/**
 * hello.c (unique to this run, so the first compile cannot hit) compiled in
 * one directory, then again in another, as a fresh kernel build directory
 * would: the second must be a hit.
 */
async function helloTwice(env: NodeJS.ProcessEnv): Promise<Check> {
  const name = "ccache hits";
  const base = await mkdtemp(path.join(os.tmpdir(), "keel-doctor-"));
  try {
    const dirs = [path.join(base, "first"), path.join(base, "second")];
    const buildEnv = kbuildEnv(env, { src: base, obj: dirs[0] as string }, debianArch());
    const log = buildEnv.CCACHE_STATSLOG as string;
    const program = `#include <stdio.h>\nint main(void) { puts("hello from keel doctor ${randomBytes(8).toString("hex")}"); return 0; }\n`;
    const results: string[] = [];
    for (const dir of dirs) {
      await mkdir(dir, { recursive: true });
      await writeFile(path.join(dir, "hello.c"), program);
      await rm(log, { force: true });
      const argv = [...compiler, "-O2", "-c", "hello.c", "-o", "hello.o"];
      const result = await exec(argv, { cwd: dir, env: buildEnv, nothrow: true });
      if (result.exitCode !== 0) {
        return { name, status: "fail", detail: `\`${showCommand(argv)}' failed (exit ${result.exitCode}): ${result.stderr.trim().split("\n").slice(-3).join(" ")}. Fix: check that gcc works (Debian package gcc)`, packages: ["gcc"] };
      }
      if (result.stdout.trim() !== "") {
        return {
          name,
          status: "fail",
          detail: `\`${wrapper}' printed "${result.stdout.trim().split("\n")[0]}" to standard output while compiling; Kbuild reads the compiler's output and would reject it ("unsupported assembler"). Fix: remove what prints (a wrapper script around gcc or ccache, a ccache prefix_command)`,
        };
      }
      const stats = parseStatsLog(await readFile(log, "utf8").catch(() => ""));
      results.push(stats.hits > 0 ? "hit" : stats.misses > 0 ? "miss" : "not cached");
    }
    if (results[1] === "hit") return { name, status: "ok", detail: `hello.c compiled twice in two directories: ${results.join(", then ")}` };
    const config = await exec(["ccache", "-p"], { env: buildEnv, nothrow: true });
    const overrides = config.stdout.split("\n").filter((l) => /\b(disable|read_only|recache|direct_mode|hash_dir) = (true|false)/.test(l) && !l.startsWith("(default)"));
    return {
      name,
      status: "fail",
      detail:
        `hello.c compiled twice in two directories: ${results.join(", then ")} — the second should be a hit. ` +
        (env.CCACHE_DISABLE ? "CCACHE_DISABLE is set in your environment. Fix: unset it" : `Fix: check ccache's configuration (\`ccache -p\`)${overrides.length > 0 ? `; these are set: ${overrides.join("; ")}` : ""}`),
    };
  } finally {
    await rm(base, { recursive: true, force: true });
  }
}
