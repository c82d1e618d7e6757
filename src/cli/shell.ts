import { mkdtemp } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { UsageError } from "../errors.js";
import { exec, runInteractive, shellQuote, systemOwners } from "../host/exec.js";
import { defineCommand, systemArgument } from "./command.js";
import { planFor, realizeShowingProgress, stepOf, storeOption } from "./planning.js";

export const shellCommand = defineCommand({
  name: "shell",
  summary: "open a shell inside a system's build output",
  description:
    "`keel shell <system> rootfs` builds the system if needed, unpacks a throwaway copy of its root\n" +
    "filesystem and starts a shell in it (chroot; as an ordinary user inside a user namespace).\n" +
    "The copy is deleted when the shell exits. Give a command after -- to run it instead of a shell.",
  positionals: [
    systemArgument,
    { name: "step", required: true, description: "What to enter: rootfs." },
  ],
  options: { store: storeOption },
  examples: [
    ["keel shell qemu rootfs", "Look around the qemu system's root filesystem."],
    ["keel shell qemu rootfs -- cat /etc/fstab", "Run one command in it."],
  ],
  async run(context, { values, positionals, rest: command }) {
    const [system = "", kind = ""] = positionals;
    if (kind !== "rootfs") {
      throw new UsageError(`keel shell: \`${kind}' cannot be entered yet; rootfs can.\nFix: run \`keel shell ${system} rootfs\`.`);
    }
    const planned = await planFor(context, system, values.store);
    const { plan, store } = planned;
    const step = stepOf(plan, kind);
    const realized = await realizeShowingProgress(context, planned, false);
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
  },
});
