import { mkdtemp } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { configureKernel, kbuildEnv, type KbuildTree, type SourceKernelLocal, type SourceKernelSlice } from "../steps/kbuild.js";
import { UsageError } from "../errors.js";
import { exec, runInteractive, shellQuote, systemOwners } from "../host/exec.js";
import { subPlan } from "../plan/plan.js";
import { defineCommand, systemArgument, type Context } from "./command.js";
import { planFor, realizeShowingProgress, stepOf, storeOption, type PlannedSystem } from "./planning.js";

const enterable = ["rootfs", "kernel"];

/** A throwaway copy of the root filesystem, entered with chroot. */
async function rootfsShell(context: Context, planned: PlannedSystem, system: string, command: readonly string[]): Promise<number> {
  const { plan, store } = planned;
  const step = stepOf(plan, "rootfs");
  const realized = await realizeShowingProgress(context, { ...planned, plan: subPlan(plan, step) }, false);
  if ("exitCode" in realized) return realized.exitCode;
  const tarball = path.join(store.pathOf(step.hash, step.name), "rootfs.tar");
  const root = await mkdtemp(path.join(os.tmpdir(), `keel-shell-${system}-`));
  const inner = command.length > 0 ? command : ["/bin/bash", "-l"];
  const script = `tar -xf ${shellQuote(tarball)} -C ${shellQuote(root)} --exclude='./dev/*' && exec chroot ${shellQuote(root)} ${inner.map(shellQuote).join(" ")}`;
  // As an ordinary user the copy is both unpacked and deleted inside a user namespace.
  const namespace = systemOwners("--mount");
  try {
    return await runInteractive([...namespace, "sh", "-c", script], {
      env: { ...context.env, HOME: "/root", TERM: context.env.TERM ?? "linux", PS1: `keel:${system}:rootfs# ` },
    });
  } finally {
    await exec([...namespace, "rm", "-rf", "--one-file-system", root], { env: context.env });
  }
}

/** A system's kernel build as keel configures it: the source (fetched if needed), the build directory, the environment. */
export interface KernelBuildTree {
  readonly tree: KbuildTree;
  readonly slice: SourceKernelSlice;
  readonly env: NodeJS.ProcessEnv;
}

/** What the kernel step of a system whose kernel is built from source needs here; a usage error for Debian's prebuilt kernel. */
export function sourceKernelLocal(planned: PlannedSystem, system: string, command: string): SourceKernelLocal {
  if (planned.evaluated.config.boot.kernel.source === null) {
    throw new UsageError(
      `${command}: \`${system}' boots Debian's prebuilt kernel (boot.kernel.source is null), so there is no kernel build to enter.\n` +
        "Fix: set boot.kernel.source to a kernel source input (see `inputs` in keel.config.ts).",
    );
  }
  return stepOf(planned.plan, "kernel").local as SourceKernelLocal;
}

/** Where the kernel of a system is built: the source step's tree (or a tree used in place) and the persistent build directory. */
export function kbuildTreeOf(planned: PlannedSystem): KbuildTree {
  const local = stepOf(planned.plan, "kernel").local as SourceKernelLocal;
  const source = planned.plan.steps.find((s) => s.id === "source");
  return { src: source ? planned.store.pathOf(source.hash, source.name) : (local.tree as string), obj: planned.store.workspaceOf(local.workspace) };
}

/**
 * The source and the persistent build directory of a kernel from source,
 * the build directory configured as the next build will be; `stopped`
 * holds the exit code when Ctrl-C stopped fetching the source.
 */
export async function configuredKernelTree(context: Context, planned: PlannedSystem, system: string, command: string): Promise<KernelBuildTree | { readonly stopped: number }> {
  const local = sourceKernelLocal(planned, system, command);
  // Only the source is needed: fetch it if the store lacks it.
  const source = planned.plan.steps.find((s) => s.id === "source");
  if (source !== undefined) {
    const realized = await realizeShowingProgress(context, { ...planned, plan: subPlan(planned.plan, source) }, false);
    if ("exitCode" in realized) return { stopped: realized.exitCode };
  }
  const { store } = planned;
  const tree = kbuildTreeOf(planned);
  const slice = stepOf(planned.plan, "kernel").slice as SourceKernelSlice;
  const env = kbuildEnv(context.env, tree, slice.arch);
  const setup = { log: path.join(tree.obj, "keel-shell.log"), debs: path.join(store.root, "debs"), env, baseEnv: context.env, signal: new AbortController().signal, onCommand: (line: string) => context.out.stderr(`$ ${line}\n`) };
  const { reused } = await configureKernel(setup, tree, slice, local);
  if (reused) context.out.stderr(`keel: ${tree.obj}/.config is as keel configured it (its base, fragments, settings, compiler and Kconfig files are unchanged).\n`);
  return { tree, slice, env };
}

/**
 * The kernel's persistent build directory, configured as the next build will
 * be, with the environment keel builds in: `make` there is keel's build.
 */
async function kernelShell(context: Context, planned: PlannedSystem, system: string, command: readonly string[]): Promise<number> {
  const configured = await configuredKernelTree(context, planned, system, "keel shell");
  if ("stopped" in configured) return configured.stopped;
  const { tree, env } = configured;
  context.out.stderr(
    `keel: ${tree.obj} is ${system}'s kernel build directory (source: ${tree.src}), configured as keel builds it.\n` +
      `keel: \`make' here is keel's build: MAKEFLAGS='${env.MAKEFLAGS}', ccache in ${env.CCACHE_DIR}.\n` +
      "keel: changes to .config here (make menuconfig) last until the next keel build; keep them in boot.kernel.settings.\n",
  );
  const shell = command.length > 0 ? command : [context.env.SHELL || "/bin/bash"];
  return runInteractive(shell, { cwd: tree.obj, env: { ...env, PS1: `keel:${system}:kernel$ ` } });
}

export const shellCommand = defineCommand({
  name: "shell",
  summary: "open a shell inside a system's root filesystem or kernel build",
  description:
    "`keel shell <system> rootfs` builds the system if needed, unpacks a throwaway copy of its root\n" +
    "filesystem and starts a shell in it (chroot; as an ordinary user inside a user namespace).\n" +
    "The copy is deleted when the shell exits.\n" +
    "`keel shell <system> kernel` (a kernel from source) fetches the source if needed, writes the .config\n" +
    "the next build will use, and starts a shell in the kernel's build directory with the environment keel\n" +
    "builds in: `make` there does what keel does (ccache, the fixed version stamp, the same make variables).\n" +
    "Give a command after -- to run it instead of a shell.",
  positionals: [systemArgument, { name: "step", required: true, description: `What to enter: ${enterable.join(" or ")}.` }],
  options: { store: storeOption },
  examples: [
    ["keel shell qemu rootfs", "Look around the qemu system's root filesystem."],
    ["keel shell qemu rootfs -- cat /etc/fstab", "Run one command in it."],
    ["keel shell aethelred kernel", "A shell in aethelred's kernel build; try `make drivers/nvme/`, or `make menuconfig` (needs libncurses-dev)."],
    ["keel shell aethelred kernel -- make -s kernelrelease", "Run one make there."],
  ],
  async run(context, { values, positionals, rest: command }) {
    const [system = "", kind = ""] = positionals;
    if (!enterable.includes(kind)) {
      throw new UsageError(`keel shell: \`${kind}' cannot be entered; ${enterable.join(" and ")} can.\nFix: run \`keel shell ${system} rootfs\` or \`keel shell ${system} kernel\`.`);
    }
    const planned = await planFor(context, system, values.store);
    return kind === "rootfs" ? rootfsShell(context, planned, system, command) : kernelShell(context, planned, system, command);
  },
});
