// Helpers for the benchmarks: run keel or another program and time it.
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const root = fileURLToPath(new URL("../", import.meta.url));
export const seed = path.join(root, "examples/seed");

/** Runs argv to completion and returns the seconds it took and its output; a failure ends the benchmark. */
export function run(argv: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): { seconds: number; stdout: string } {
  const started = performance.now();
  const result = spawnSync(argv[0] as string, argv.slice(1), { cwd: options.cwd, env: options.env, encoding: "utf8", maxBuffer: 256 << 20 });
  const seconds = (performance.now() - started) / 1000;
  if (result.status !== 0) {
    process.stderr.write(`${argv.join(" ")} failed (${result.status ?? result.signal}):\n${result.stdout}${result.stderr}`);
    process.exit(1);
  }
  return { seconds, stdout: result.stdout };
}

export function timed(argv: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): number {
  return run(argv, options).seconds;
}

export function keelArgv(...args: string[]): string[] {
  return [process.execPath, path.join(root, "bin/keel.js"), ...args];
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

/** A copy of the seed in `project` that imports this keel, its qemu on the small kernel built from the `linux` input. */
export function smallKernelSeed(project: string): void {
  cpSync(seed, project, { recursive: true, filter: (f) => !path.basename(f).startsWith("result-") });
  mkdirSync(path.join(project, "node_modules"));
  symlinkSync(root, path.join(project, "node_modules/keel"));
  const qemu = path.join(project, "qemu.ts");
  writeFileSync(qemu, readFileSync(qemu, "utf8").replace("kernels.debian", "kernels.small"));
}
