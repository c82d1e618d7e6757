// The kernel step, source flavour: Kbuild out of tree (O=) in a persistent
// build directory per system, so that a rebuild compiles only what changed,
// and through ccache, so that a fresh directory compiles almost nothing.
// The config is a base (defconfig, tinyconfig, Debian's, a file), then the
// fragments (merge_config.sh), then the single settings, then olddefconfig;
// every setting asked for is checked afterwards. Output, as Debian's kernel:
//   vmlinuz  System.map  config  release  lib/modules/<release>/
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { copyFile, mkdir, readdir, readFile, readlink, rm, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { cacheDir } from "../config/load.js";
import { exec } from "../host/exec.js";
import { treeFingerprint } from "../host/facts.js";
import { ConfigError } from "../errors.js";
import { ccacheDir, ccacheEnv, describeStats, kbuildArch, kbuildMakeflags, parseStatsLog, reproducible } from "./ccache.js";
import { run, type BuildContext } from "./context.js";
import { dependsOf, describeUnmet, parseConfig, settingsFragment, unmetSettings, type KernelSetting } from "./kconfig.js";
import type { DebSource } from "./debs.js";
import { debianKernelConfig, type DebianKernelSlice } from "./kernel.js";
import { defineStep } from "./step.js";
import type { ConfigChain } from "../kernel/config-chain.js";
import { clangDatabase, type CompileCommand } from "../kernel/compdb.js";

export interface SourceKernelSlice {
  /** The fingerprint of a tree used in place (a path input); null when the source step is the tree. */
  readonly tree: string | null;
  readonly arch: string;
  readonly baseConfig: string | { readonly file: string };
  readonly debian: DebianKernelSlice | null;
  readonly settings: Readonly<Record<string, KernelSetting>>;
  /** The hashes of the base config file (when baseConfig is one) and of the fragments: the paths are in local. */
  readonly fragments: readonly string[];
}

/** What the source kernel step's builder needs beyond its slice. */
export interface SourceKernelLocal {
  /** The persistent Kbuild output directory's name under the store's builds/. */
  readonly workspace: string;
  /** A tree used in place (a path input); else the source step's output is the tree. */
  readonly tree?: string;
  /** The base config file (baseConfig given as a path) and the fragments, as paths here. */
  readonly baseConfigFile?: string;
  readonly fragments: readonly string[];
  /** Where Debian's kernel is fetched from when the base is its config. */
  readonly debian?: DebSource;
}

/** Where Kbuild reads and writes: the source tree and the persistent output directory. */
export interface KbuildTree {
  readonly src: string;
  readonly obj: string;
}

const settingsFile = "keel-settings.config";
/** What the build directory's .config was made from and its hash: the same inputs and an untouched .config skip configuring. */
const configStampFile = "keel-config.stamp";
const statsFile = "keel-ccache-stats.log";
/** The stages of the .config (src/kernel/config-chain.ts), in the build directory and in the step's output. */
export const chainFile = "config-chain.json";

/**
 * The build directory's link to its source. Kbuild is told that it is the
 * source (srctree, in MAKEFLAGS), so every path it gives the compiler lies
 * in the build directory, which is ccache's base_dir: the commands hash the
 * same wherever the source and the build directory are, and ccache hits for
 * a checkout's first build, a tree of the same version elsewhere, and the
 * files another version did not change. compile_commands.json names the
 * source itself.
 */
export const sourceLink = "keel-src";

/**
 * The environment keel runs Kbuild in: ccache set up for it, the fixed
 * version stamp, and MAKEFLAGS so that a plain `make` in the build directory
 * (`keel shell <system> kernel`) is the same build.
 */
export function kbuildEnv(env: NodeJS.ProcessEnv, tree: KbuildTree, arch: string): NodeJS.ProcessEnv {
  return {
    ...env,
    ...reproducible,
    ...ccacheEnv({ dir: ccacheDir(env), baseDir: tree.obj, statsLog: path.join(tree.obj, statsFile) }),
    MAKEFLAGS: `${kbuildMakeflags(os.availableParallelism(), arch)} srctree=${path.join(tree.obj, sourceLink).replaceAll(" ", "\\ ")}`,
  };
}

/**
 * Points the build directory's link at the tree. A build directory that
 * was another source's (a version switch), or made before the link, is
 * emptied first: its commands name no path, so Kbuild would take the new
 * source's older files for built. ccache makes the rebuild of what did not
 * change cheap.
 */
async function linkSource(tree: KbuildTree): Promise<void> {
  const link = path.join(tree.obj, sourceLink);
  if ((await readlink(link).catch(() => undefined)) === tree.src) return;
  await mkdir(tree.obj, { recursive: true });
  for (const entry of await readdir(tree.obj)) await rm(path.join(tree.obj, entry), { recursive: true, force: true });
  await symlink(tree.src, link);
}

/** The directory under arch/ that Kbuild builds a Debian architecture from. */
export function kbuildSrcarch(debianArch: string): string {
  const arch = kbuildArch(debianArch);
  return arch === "x86_64" || arch === "i386" ? "x86" : arch;
}

/** `make` for the tree: from the source, output in the build directory. */
export function makeArgv(tree: KbuildTree, ...args: string[]): string[] {
  return ["make", "-C", tree.src, `O=${tree.obj}`, ...args];
}

/** Names of Kconfig files in a source tree, of the architecture's own arch/ directory only (arm64 declares KVM too). */
async function kconfigFiles(root: string, srcarch: string, dir = ""): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(path.join(root, dir), { withFileTypes: true })) {
    const relative = path.join(dir, entry.name);
    const otherArch = dir === "arch" && entry.name !== srcarch;
    if (entry.isDirectory() && entry.name !== ".git" && !otherArch) found.push(...(await kconfigFiles(root, srcarch, relative)));
    else if (entry.isFile() && entry.name.startsWith("Kconfig")) found.push(relative);
  }
  return found;
}

/** Where a symbol is declared in the tree and what its entry depends on. */
async function declaration(src: string, files: readonly string[], name: string): Promise<{ file: string; depends: string[] } | undefined> {
  for (const file of files) {
    const text = await readFile(path.join(src, file), "utf8");
    if (!text.includes(name)) continue;
    const depends = dependsOf(text, name);
    if (depends !== undefined) return { file, depends };
  }
  return undefined;
}

const sha256 = (text: string): string => createHash("sha256").update(text).digest("hex");

/** The files of a tree that Kconfig reads: Kconfig*, configs/ directories, scripts/kconfig/, the top Makefile (the version). */
const configuresKernel = (relative: string): boolean =>
  relative === "Makefile" || relative.startsWith("scripts/kconfig/") || /(^|\/)configs\//.test(relative) || path.basename(relative).startsWith("Kconfig");

/**
 * What the .config is made from: the slice, the fragments' and base file's
 * text, the compiler (Kconfig asks it what it supports) and the source's
 * Kconfig files — the source's store path names them all; a tree used in
 * place is fingerprinted by its Kconfig files, configs/ directories and
 * scripts/kconfig/, so that an edit of a .c file does not reconfigure.
 */
async function configInputs(tree: KbuildTree, slice: SourceKernelSlice, local: SourceKernelLocal): Promise<string> {
  const hash = createHash("sha256");
  hash.update(JSON.stringify({ ...slice, tree: null }));
  for (const file of [local.baseConfigFile, ...local.fragments]) if (file !== undefined) hash.update(`\0${file}\0${await readFile(file, "utf8")}`);
  hash.update(`\0${(await exec(["gcc", "--version"])).stdout}`);
  hash.update(`\0${local.tree === undefined ? tree.src : treeFingerprint(tree.src, configuresKernel)}`);
  return hash.digest("hex");
}

/**
 * Writes the build directory's .config from the base, the fragments and the
 * settings, and checks that each setting asked for is in it. Returns the
 * final .config, as text and parsed, and whether it was the build
 * directory's already (`reused`: nothing it is made from changed).
 */
export async function configureKernel(
  context: BuildContext,
  tree: KbuildTree,
  slice: SourceKernelSlice,
  local: SourceKernelLocal,
): Promise<{ readonly text: string; readonly values: Map<string, string>; readonly reused: boolean }> {
  await linkSource(tree);
  const config = path.join(tree.obj, ".config");
  const stamp = path.join(tree.obj, configStampFile);
  const inputs = await configInputs(tree, slice, local);
  const previous = await readFile(stamp, "utf8").catch(() => "");
  if (previous !== "" && existsSync(path.join(tree.obj, chainFile))) {
    const current = await readFile(config, "utf8").catch(() => "");
    if (previous === `${inputs}\n${sha256(current)}\n`) return { text: current, values: parseConfig(current), reused: true };
  }
  await rm(stamp, { force: true });
  if (slice.baseConfig === "defconfig" || slice.baseConfig === "tinyconfig") await run(context, makeArgv(tree, slice.baseConfig));
  else if (slice.debian !== null && local.debian !== undefined) await debianKernelConfig(context, path.join(tree.obj, "keel-debian"), slice.debian, local.debian, config);
  else await copyFile(local.baseConfigFile as string, config);
  const baseText = await readFile(config, "utf8");
  const settings = path.join(tree.obj, settingsFile);
  const settingsText = settingsFragment(slice.settings);
  await writeFile(settings, settingsText);
  await run(context, [path.join(tree.src, "scripts/kconfig/merge_config.sh"), "-m", "-O", tree.obj, config, ...local.fragments, settings], { cwd: tree.obj });
  const merged = await readFile(config, "utf8");
  await run(context, makeArgv(tree, "olddefconfig"));
  const text = await readFile(config, "utf8");
  const chain: ConfigChain = {
    base: { label: typeof slice.baseConfig === "string" ? slice.baseConfig : (local.baseConfigFile as string), config: baseText },
    fragments: await Promise.all(local.fragments.map(async (name) => ({ name, text: await readFile(name, "utf8") }))),
    settings: settingsText,
    merged,
    final: text,
  };
  await writeFile(path.join(tree.obj, chainFile), `${JSON.stringify(chain)}\n`);
  const final = parseConfig(text);
  const requested = new Map<string, string>();
  for (const stage of [...chain.fragments.map((f) => f.text), chain.settings]) for (const [name, value] of parseConfig(stage)) requested.set(name, value);
  const unmet = unmetSettings(requested, final);
  if (unmet.length > 0) {
    const files = await kconfigFiles(tree.src, kbuildSrcarch(slice.arch));
    const lines = await Promise.all(unmet.map(async (u) => describeUnmet(u, await declaration(tree.src, files, u.name), final)));
    throw new ConfigError(
      `The kernel config did not take ${unmet.length === 1 ? "a setting" : `${unmet.length} settings`} asked for (boot.kernel.settings or a fragment):\n${lines.join("\n")}\n` +
        "Fix: also set what each depends on, or drop the setting; the build directory's .config shows the result.",
    );
  }
  await writeFile(stamp, `${inputs}\n${sha256(text)}\n`);
  return { text, values: final, reused: false };
}

/** How many objects a build of this config compiled last time, for a percentage. */
function historyFile(env: NodeJS.ProcessEnv, config: string): string {
  return path.join(cacheDir(env), "kernel-objects", sha256(config).slice(0, 32));
}

/** Counts Kbuild's compile lines and reports progress against the last build of the same config. */
function progressCounter(context: BuildContext, expected: number | undefined): { onOutput: (text: string) => void; count: () => number } {
  let compiled = 0;
  let partial = "";
  let shown = "";
  return {
    onOutput(text) {
      const lines = (partial + text).split("\n");
      partial = lines.pop() ?? "";
      compiled += lines.filter((l) => /^\s+(CC|AS)(\s+\[M\])?\s/.test(l)).length;
      const next = expected ? `${Math.min(99, Math.floor((compiled / expected) * 100))}%` : `${compiled} files`;
      if (next !== shown) context.progress?.(next);
      shown = next;
    },
    count: () => compiled,
  };
}

/** Builds the kernel into `out`; returns the ccache summary. */
async function buildSourceKernel(context: BuildContext, out: string, slice: SourceKernelSlice, local: SourceKernelLocal, tree: KbuildTree): Promise<string> {
  const env = kbuildEnv(context.env, tree, slice.arch);
  const kbuild: BuildContext = { ...context, env };
  const { text: configText, values: final } = await configureKernel(kbuild, tree, slice, local);
  const history = historyFile(context.env, configText);
  const expected = Number(await readFile(history, "utf8").catch(() => "")) || undefined;
  const stats = path.join(tree.obj, statsFile);
  await rm(stats, { force: true });
  const counter = progressCounter(kbuild, expected);
  await run(kbuild, makeArgv(tree), { onOutput: counter.onOutput });
  // Kbuild's own database of this configuration's compile commands, made readable by clang tools. Its script
  // is run directly (`make compile_commands.json` spends 6 s reading the Makefiles again) over what
  // vmlinux is linked from and the modules, as that target does, and the libraries' objects too.
  const database = path.join(tree.obj, "compile_commands.json");
  const archives = ["vmlinux.a", "lib/lib.a", `arch/${kbuildSrcarch(slice.arch)}/lib/lib.a`, "modules.order"].filter((f) => existsSync(path.join(tree.obj, f)));
  await run(kbuild, ["python3", path.join(tree.src, "scripts/clang-tools/gen_compile_commands.py"), "-a", "ar", "-o", database, ...archives], { cwd: tree.obj });
  const commands = clangDatabase(JSON.parse(await readFile(database, "utf8")) as CompileCommand[], { link: sourceLink, src: tree.src });
  await writeFile(database, `${JSON.stringify(commands, null, 2)}\n`);
  if (counter.count() > (expected ?? 0) / 2) {
    await mkdir(path.dirname(history), { recursive: true });
    await writeFile(history, `${counter.count()}\n`);
  }
  const release = (await run(kbuild, makeArgv(tree, "-s", "kernelrelease"))).stdout.trim();
  const image = (await run(kbuild, makeArgv(tree, "-s", "image_name"))).stdout.trim();
  await copyFile(path.join(tree.obj, image), path.join(out, "vmlinuz"));
  await copyFile(path.join(tree.obj, "System.map"), path.join(out, "System.map"));
  await writeFile(path.join(out, "config"), configText);
  await copyFile(path.join(tree.obj, chainFile), path.join(out, chainFile));
  await writeFile(path.join(out, "release"), `${release}\n`);
  const modules = path.join(out, "lib/modules", release);
  if (final.get("MODULES") === "y") {
    await run(kbuild, makeArgv(tree, "modules_install", `INSTALL_MOD_PATH=${out}`, "INSTALL_MOD_STRIP=1", "DEPMOD=true"));
    // Links back into the build directory: the store's copy stands alone.
    await rm(path.join(modules, "build"), { force: true });
    await rm(path.join(modules, "source"), { force: true });
  } else {
    await mkdir(modules, { recursive: true });
    for (const file of ["modules.order", "modules.builtin"]) {
      const built = path.join(tree.obj, file);
      if (existsSync(built)) await copyFile(built, path.join(modules, file));
      else await writeFile(path.join(modules, file), "");
    }
  }
  await run(context, ["depmod", "-b", out, release]);
  const compiled = counter.count();
  const summary = `${compiled} ${compiled === 1 ? "file" : "files"} compiled; ${describeStats(parseStatsLog(await readFile(stats, "utf8").catch(() => "")))}`;
  await writeFile(context.log, `${summary}\n`, { flag: "a" });
  return summary;
}

/** Reads the source step's tree, or a tree used in place (a path input) when there is no source step. */
export const sourceKernelStep = defineStep<SourceKernelSlice, never, "source", SourceKernelLocal>({
  kind: "kernel-source",
  version: 3,
  workspace: (local) => local.workspace,
  build(context, out, { slice, inputs, local, workspace }) {
    const src = inputs.source ?? local.tree;
    if (src === undefined || workspace === undefined) throw new Error("kernel-source: planned without a source or a workspace");
    return buildSourceKernel(context, out, slice, local, { src, obj: workspace });
  },
});
