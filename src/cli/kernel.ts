// `keel kernel`: the kernel developer's loop — where the code and its
// compile commands are, an editable checkout of the pinned source, a boot of
// the kernel with a tiny userland, and how the .config came about.
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { UsageError } from "../errors.js";
import { exec, runInteractive } from "../host/exec.js";
import { evaluateSystem, type EvaluateOptions, type Project } from "../config/project.js";
import { busyboxPath, isKernelTree, kernelFacts } from "../host/facts.js";
import { chooseAccelerator } from "../host/kvm.js";
import { cacheDir } from "../config/load.js";
import { describeLocked } from "../inputs/lock.js";
import { readOverrides, writeOverride } from "../inputs/override.js";
import { clangdConfig } from "../kernel/compdb.js";
import { chainChanges, formatChainChanges, provenance, type ConfigChain } from "../kernel/config-chain.js";
import { readKconfig } from "../kernel/kconfig-db.js";
import { ConsoleReader, kernelRunArgv, qbootPath, runRequest, runUserland, treeRunInput, treeRunModule, treeRunSystem } from "../kernel/run.js";
import { planKernel, subPlan } from "../plan/plan.js";
import { metadataFile, Store, storeDir } from "../store/store.js";
import { cpioArchive } from "../steps/cpio.js";
import { chainFile, kbuildSrcarch } from "../steps/kbuild.js";
import { parseConfig, symbolsOf } from "../steps/kconfig.js";
import { defineCommand, secondsOption, type Context } from "./command.js";
import { planFor, realizeShowingProgress, stepOf, storeOption, type PlannedSystem } from "./planning.js";
import { configuredKernelTree, kbuildTreeOf, sourceKernelLocal } from "./shell.js";

const actions = ["code", "checkout", "run", "config", "explain"] as const;

/** The kernel step built (incrementally), and its store path; or the exit code of an interrupted build. */
async function builtKernel(context: Context, planned: PlannedSystem): Promise<{ readonly path: string } | { readonly exitCode: number }> {
  return realizeShowingProgress(context, { ...planned, plan: subPlan(planned.plan, stepOf(planned.plan, "kernel")) }, false);
}

/** A kernel tree outside any project: keel's own small system of it, planned as its kernel steps alone. */
async function planTree(context: Context, tree: string, store: string | undefined, options: EvaluateOptions): Promise<PlannedSystem> {
  if (!isKernelTree(tree)) {
    throw new UsageError(
      `keel kernel run: ${tree} is not a kernel source tree (no Makefile and Kconfig at its top).\n` +
        "Fix: run it at the top of a kernel tree, name one with --source DIR, or name a system of the project (`keel systems`).",
    );
  }
  const project: Project = {
    file: path.join(tree, "keel.config.ts"),
    inputs: { [treeRunInput]: { type: "path", path: tree } },
    systems: new Map([[treeRunSystem, [treeRunModule]]]),
  };
  const evaluated = evaluateSystem(project, treeRunSystem, options);
  const plan = planKernel(treeRunSystem, evaluated.config, kernelFacts(evaluated.config, project, tree));
  context.out.stderr(`keel: the tree ${tree}, on tinyconfig and what the run needs${options.commandLine ? ` and ${options.commandLine.label}` : ""}.\n`);
  return { evaluated, plan, store: new Store(storeDir(context.env, store, context.cwd)) };
}

async function code(context: Context, planned: PlannedSystem, system: string): Promise<number> {
  sourceKernelLocal(planned, system, "keel kernel code");
  const built = await builtKernel(context, planned);
  if ("exitCode" in built) return built.exitCode;
  const source = planned.plan.steps.find((s) => s.id === "source");
  const { src, obj } = kbuildTreeOf(planned);
  const database = path.join(obj, "compile_commands.json");
  const entries = (JSON.parse(await readFile(database, "utf8")) as unknown[]).length;
  const clangd = path.join(src, ".clangd");
  context.out.stdout(
    `source:                ${src}${source ? " (the store's, read-only)" : ""}\n` +
      `build directory:       ${obj}\n` +
      `compile_commands.json: ${database} (${entries} files of this configuration)\n` +
      (existsSync(clangd)
        ? `.clangd:               ${clangd} (points clangd at the build directory)\n\nOpen the source in an editor with clangd, e.g. \`code ${src}\` with the clangd extension.\n`
        : `\nclangd: \`clangd --compile-commands-dir=${obj}\`; in VS Code, "clangd.arguments": ["--compile-commands-dir=${obj}"].\n` +
          `To edit and rebuild, \`keel kernel checkout ${system} DIR\` makes an editable tree with a .clangd in it.\n`),
  );
  return 0;
}

async function checkout(context: Context, planned: PlannedSystem, system: string, dir: string | undefined, reset: boolean): Promise<number> {
  sourceKernelLocal(planned, system, "keel kernel checkout");
  const project = await context.project();
  const input = planned.evaluated.config.boot.kernel.source as string;
  const sharing = [...project.systems.keys()].filter((s) => s !== system);
  const current = readOverrides(project.file)[input];
  if (reset) {
    if (current === undefined) {
      context.out.stderr(`keel kernel checkout: the input \`${input}' is not checked out; ${system} builds from keel.lock's source already.\n`);
      return 0;
    }
    await writeOverride(project.file, input, undefined);
    context.out.stderr(`keel: the input \`${input}' is keel.lock's again (${current.from ?? "as pinned"}); the tree ${current.path} is kept, delete it when done.\n`);
    return 0;
  }
  if (current !== undefined) {
    throw new UsageError(`keel kernel checkout: the input \`${input}' is checked out at ${current.path} already.\nFix: edit it there, or run \`keel kernel checkout ${system} --reset\` first.`);
  }
  const source = planned.plan.steps.find((s) => s.id === "source");
  if (source === undefined) {
    throw new UsageError(`keel kernel checkout: the input \`${input}' is a tree used in place already (a path input): edit it there.\nFix: nothing to check out.`);
  }
  const target = path.resolve(context.cwd, dir ?? input);
  if (existsSync(target) && readdirSync(target).length > 0) {
    throw new UsageError(`keel kernel checkout: ${target} exists and is not empty.\nFix: name a new directory, e.g. \`keel kernel checkout ${system} ./${input}-src\`.`);
  }
  const realized = await realizeShowingProgress(context, { ...planned, plan: subPlan(planned.plan, source) }, false);
  if ("exitCode" in realized) return realized.exitCode;
  const from = describeLocked((source.local as { locked: Parameters<typeof describeLocked>[0] }).locked);
  const started = performance.now();
  try {
    await exec(["cp", "-a", `${realized.path}/.`, target]);
    await rm(path.join(target, metadataFile));
    await exec(["chmod", "-R", "u+w", target]);
    const git = (...args: string[]) =>
      exec(["git", "-C", target, ...args], { env: { ...context.env, GIT_AUTHOR_NAME: "keel", GIT_AUTHOR_EMAIL: "keel@localhost", GIT_COMMITTER_NAME: "keel", GIT_COMMITTER_EMAIL: "keel@localhost" } });
    await git("init", "-q");
    // -f: Debian's source ignores every top-level path (its .gitignore is for the packaging repository).
    await git("-c", "core.compression=1", "add", "-A", "-f");
    await git("-c", "core.compression=1", "commit", "-q", "-m", `${input}: ${from}, as keel.lock pins it`);
  } catch (error) {
    await rm(target, { recursive: true, force: true });
    throw error;
  }
  const relative = path.relative(path.dirname(project.file), target);
  await writeOverride(project.file, input, { path: relative.startsWith("..") ? target : `./${relative}`, from });
  // The tree's own build directory, as the next plan names it.
  const replanned = await planFor(context, system, undefined);
  const { obj } = kbuildTreeOf(replanned);
  await writeFile(path.join(target, ".clangd"), clangdConfig(obj));
  await writeFile(path.join(target, ".git/info/exclude"), ".clangd\n", { flag: "a" });
  context.out.stderr(
    `keel: checked out ${from} into ${target} as a git repository (its first commit is the pinned source) in ${((performance.now() - started) / 1000).toFixed(1)} s.\n` +
      `keel: ${system}${sharing.length > 0 ? ` and every other system whose boot.kernel.source is \`${input}'` : ""} builds from it now (keel.override.json; keel.lock is unchanged); ` +
      `\`keel kernel checkout ${system} --reset' returns to keel.lock's.\n`,
  );
  return 0;
}

async function runKernel(context: Context, planned: PlannedSystem, command: string | undefined, timeout: number, append: readonly string[]): Promise<number> {
  const built = await builtKernel(context, planned);
  if ("exitCode" in built) return built.exitCode;
  await planned.store.close();
  const kernel = path.join(built.path, "vmlinuz");
  const { accel, notice } = await chooseAccelerator(kernel, path.join(cacheDir(context.env), "kvm-probe.json"));
  if (notice !== undefined) context.out.stderr(`${notice}\n`);
  const nonce = randomBytes(6).toString("hex");
  const work = await mkdtemp(path.join(os.tmpdir(), "keel-kernel-run-"));
  try {
    const initrd = path.join(work, "initrd.img");
    await writeFile(initrd, cpioArchive([...runUserland(await readFile(busyboxPath)), ...runRequest(nonce, command)]));
    const argv = kernelRunArgv({ kernel, initrd, accel, memory: 256, interactive: command === undefined, append, ...(existsSync(qbootPath) ? { bios: qbootPath } : {}) });
    if (command === undefined) return await runInteractive(argv, { env: context.env });
    const reader = new ConsoleReader(nonce, (line) => context.out.stdout(`${line}\n`));
    const result = await exec(argv, { nothrow: true, timeout: timeout * 1000, onOutput: (text) => reader.feed(text) });
    const outcome = reader.finish();
    const log = path.join(cacheDir(context.env), "kernel-run-console.log");
    await writeFile(log, reader.text());
    if (outcome.trouble !== undefined) {
      context.out.stderr(`keel kernel run: the kernel reported a problem (the whole console: ${log}):\n${outcome.trouble}\n`);
      return outcome.exitCode !== undefined && outcome.exitCode !== 0 ? outcome.exitCode : 1;
    }
    if (outcome.exitCode === undefined) {
      const why = result.timedOut ? `did not finish in ${timeout} s` : `stopped before the command ended (QEMU exit code ${result.exitCode}${result.stderr.trim() ? `: ${result.stderr.trim().split("\n").pop()}` : ""})`;
      context.out.stderr(`keel kernel run: the machine ${why}. The console: ${log}\nFix: read the console's end; --timeout gives a slow command more time.\n`);
      return 1;
    }
    return outcome.exitCode;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function configDiff(context: Context, planned: PlannedSystem, system: string): Promise<number> {
  const configured = await configuredKernelTree(context, planned, system, "keel kernel config");
  if ("stopped" in configured) return configured.stopped;
  const chain = JSON.parse(await readFile(path.join(configured.tree.obj, chainFile), "utf8")) as ConfigChain;
  context.out.stdout(`${system}'s kernel config, stage by stage (${configured.tree.obj}/.config):\n\n${formatChainChanges(chain, chainChanges(chain))}`);
  return 0;
}

async function explain(context: Context, planned: PlannedSystem, system: string, option: string): Promise<number> {
  const name = option.replace(/^CONFIG_/, "");
  const configured = await configuredKernelTree(context, planned, system, "keel kernel explain");
  if ("stopped" in configured) return configured.stopped;
  const { tree, slice } = configured;
  const chain = JSON.parse(await readFile(path.join(tree.obj, chainFile), "utf8")) as ConfigChain;
  const srcarch = kbuildSrcarch(slice.arch);
  const database = readKconfig(tree.src, { SRCARCH: srcarch, ARCH: srcarch });
  const entries = database.entries.get(name) ?? [];
  if (entries.length === 0) {
    throw new UsageError(`keel kernel explain: no Kconfig file of ${tree.src} declares CONFIG_${name} for ${srcarch}.\nFix: name a Kconfig symbol without the CONFIG_ prefix, e.g. VIRTIO_BLK.`);
  }
  const final = parseConfig(chain.final);
  const withValues = (expression: string) => `${expression}  [${symbolsOf(expression, final).join(", ")}]`;
  const edges = (list: readonly { by: string; condition: string | null }[] | undefined) =>
    (list ?? []).map((e) => `    ${e.by}=${final.get(e.by) ?? "n"}${e.condition ? ` if ${withValues(e.condition)}` : ""}`);
  const origin = provenance(chain, name);
  const lines = [`CONFIG_${name}=${origin.value === "n" ? "n (not set)" : origin.value} in ${system}'s kernel`];
  for (const entry of entries) {
    lines.push("", `${entry.type ?? "?"}${entry.prompt ? ` "${entry.prompt}"` : " (no prompt: only set by defaults and selects)"}   ${entry.file}:${entry.line}`);
    if (entry.depends.length > 0) lines.push("  depends on:", ...entry.depends.map((d) => `    ${withValues(d)}`));
    if (entry.defaults.length > 0) lines.push("  default:", ...entry.defaults.map((d) => `    ${d.value}${d.condition ? ` if ${withValues(d.condition)}` : ""}`));
    if (entry.selects.length > 0) lines.push("  selects:", ...entry.selects.map((s) => `    ${s.value}=${final.get(s.value) ?? "n"}${s.condition ? ` if ${s.condition}` : ""}`));
    if (entry.help !== "") lines.push("  help:", ...entry.help.split("\n").map((l) => `    ${l}`));
  }
  const selected = edges(database.selectedBy.get(name));
  const implied = edges(database.impliedBy.get(name));
  lines.push("", selected.length > 0 ? "selected by:" : "selected by: nothing", ...selected);
  lines.push(implied.length > 0 ? "implied by:" : "implied by: nothing", ...implied);
  const asked = origin.requested.map((r) => `${r.stage} asks ${r.value}`).join("; ");
  lines.push(
    "",
    `set by: ${origin.stage}` +
      ` (the base ${chain.base.label} has ${origin.base}${asked ? `; ${asked}` : ""}${origin.stage === "olddefconfig" ? "; olddefconfig changed it: a default, or a select above" : ""})`,
  );
  context.out.stdout(`${lines.join("\n")}\n`);
  return 0;
}

export const kernelCommand = defineCommand({
  name: "kernel",
  summary: "the kernel developer's loop: read the code as built, check it out, boot it, explain its config",
  description:
    "keel kernel code <system>               build the kernel if needed; where its source and compile_commands.json are, for clangd.\n" +
    "keel kernel checkout <system> [DIR]     the pinned source as a git repository in DIR; the system builds from it (keel.override.json).\n" +
    "keel kernel checkout <system> --reset   build from keel.lock's source again (DIR is kept).\n" +
    "keel kernel run [<system>] [--source DIR] [--exec CMD] [--kconfig FRAGMENT]\n" +
    "                                        build incrementally, boot with a busybox initramfs, run CMD (else a shell on the terminal);\n" +
    "                                        CMD's output and exit code are keel's; a panic or an oops prints the console's trace, exit code 1.\n" +
    "                                        Without a system: the tree DIR (default: the current directory) on tinyconfig and what the run needs.\n" +
    "keel kernel config <system> --diff      what the base, each fragment, boot.kernel.settings and olddefconfig changed, option by option.\n" +
    "keel kernel explain <system> OPTION     an option's value, prompt, help, dependencies, selects, and the stage that set it.",
  positionals: [
    { name: "action", required: true, description: actions.join(", ") + "." },
    { name: "system", required: false, description: "A system of the project whose kernel is built from source (see `keel systems`); run needs none." },
    { name: "argument", required: false, description: "checkout: the directory (default: the input's name); explain: the option." },
  ],
  options: {
    store: storeOption,
    reset: { type: "boolean", description: "checkout: build from keel.lock's source again." },
    exec: { type: "string", value: "command", description: "run: the shell command to run in the guest (busybox sh)." },
    timeout: { type: "string", value: "seconds", description: "run: how long the command may take (default 300)." },
    append: { type: "string", multiple: true, value: "param", description: "run: a kernel parameter to add." },
    source: {
      type: "string",
      value: "dir",
      description: "run: the kernel tree to build and boot (default without a system: the current directory); with a system, its kernel source for this run.",
    },
    kconfig: { type: "string", value: "fragment", description: "run: a Kconfig fragment merged after the system's own, for this run (the next plain build goes back)." },
    diff: { type: "boolean", description: "config: show what each stage changed." },
  },
  examples: [
    ["keel kernel code qemu", "Where qemu's kernel source and compile_commands.json are."],
    ["keel kernel checkout qemu ./linux", "Edit the kernel in ./linux; keel builds qemu from it."],
    ["keel kernel run qemu --exec 'uname -r'", "Boot qemu's kernel and run one command."],
    ["keel kernel run qemu --kconfig ./debug.config", "The same with a fragment merged on top, for this run."],
    ["keel kernel run --source ~/src/linux --exec 'dmesg | head'", "Build and boot any kernel tree, no project needed."],
    ["keel kernel explain qemu VIRTIO_BLK", "Why VIRTIO_BLK has the value it has."],
  ],
  async run(context, { values, positionals }) {
    const [action = "", system, argument] = positionals;
    if (!(actions as readonly string[]).includes(action)) {
      throw new UsageError(`keel kernel: unknown action \`${action}'.\nFix: use one of ${actions.join(", ")}.`);
    }
    for (const [option, given] of [["kconfig", values.kconfig], ["source", values.source]] as const) {
      if (given !== undefined && action !== "run") throw new UsageError(`keel kernel ${action}: --${option} is for \`keel kernel run'.\nFix: drop it.`);
    }
    const fragment = values.kconfig === undefined ? undefined : path.resolve(context.cwd, values.kconfig);
    if (fragment !== undefined && !existsSync(fragment)) throw new UsageError(`keel kernel run: --kconfig ${values.kconfig}: there is no file ${fragment}.\nFix: name a Kconfig fragment (lines like CONFIG_MAGIC_SYSRQ=y).`);
    const commandLine = fragment === undefined ? {} : { commandLine: { label: `--kconfig ${values.kconfig}`, module: { boot: { kernel: { configFragments: [fragment] } } } } };
    const sourceTree = values.source === undefined ? undefined : path.resolve(context.cwd, values.source);
    const run = (planned: PlannedSystem) => runKernel(context, planned, values.exec, secondsOption(values.timeout, "keel kernel run", "timeout", 300), values.append ?? []);
    if (system === undefined) {
      if (action !== "run") throw new UsageError(`keel kernel ${action}: missing the system.\nFix: run \`keel kernel ${action} <system>\` (\`keel systems\` lists them).`);
      return run(await planTree(context, sourceTree ?? context.cwd, values.store, commandLine));
    }
    const planned = await planFor(context, system, values.store, commandLine, sourceTree);
    switch (action) {
      case "code":
        return code(context, planned, system);
      case "checkout":
        return checkout(context, planned, system, argument, values.reset === true);
      case "run":
        if (sourceTree !== undefined && planned.evaluated.config.boot.kernel.source === null) {
          throw new UsageError(
            `keel kernel run: --source replaces ${system}'s kernel source input, and ${system} boots Debian's prebuilt kernel (boot.kernel.source is null).\n` +
              `Fix: drop the system: \`keel kernel run --source ${values.source}\` boots the tree with keel's own small config.`,
          );
        }
        return run(planned);
      case "config":
        if (values.diff !== true) throw new UsageError("keel kernel config: say what to show.\nFix: run `keel kernel config <system> --diff`.");
        return configDiff(context, planned, system);
      default:
        if (argument === undefined) throw new UsageError("keel kernel explain: missing the option.\nFix: run `keel kernel explain <system> OPTION`, e.g. VIRTIO_BLK.");
        return explain(context, planned, system, argument);
    }
  },
});
