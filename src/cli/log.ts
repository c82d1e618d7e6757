import { readFile } from "node:fs/promises";
import { UsageError } from "../errors.js";
import { defineCommand, systemArgument } from "./command.js";
import { planFor, stepOf, storeOption } from "./planning.js";

export const logCommand = defineCommand({
  name: "log",
  summary: "print the log of one build step of a system",
  description: "Prints the commands a step ran and their output, from its latest build in the store (kept after a failure too).",
  positionals: [
    systemArgument,
    { name: "step", required: true, description: "kernel, initrd, rootfs, system or image (the disk `keel run` boots)." },
  ],
  options: { store: storeOption },
  examples: [
    ["keel log qemu rootfs", "What mmdebstrap did for the qemu system's root filesystem."],
    ["keel log aethelred kernel", "How aethelred's kernel was unpacked."],
  ],
  async run(context, { values, positionals }) {
    const [system = "", kind = ""] = positionals;
    const { plan, store } = await planFor(context, system, values.store);
    const step = stepOf(plan, kind);
    const log = store.logOf(step.hash, step.name);
    const text = await readFile(log, "utf8").catch(() => undefined);
    if (text === undefined) {
      throw new UsageError(
        `The ${kind} step of \`${system}' (${step.hash}) has no log in ${store.root}: it has not been built there.\n` +
          `Fix: run \`keel build ${system}\` first.`,
      );
    }
    context.out.stdout(text);
    return 0;
  },
});
