import { UsageError } from "../errors.js";
import { Store, storeDir } from "../store/store.js";
import { defineCommand } from "./command.js";
import { formatBytes } from "./output.js";
import { storeOption } from "./planning.js";

export const gcCommand = defineCommand({
  name: "gc",
  summary: "delete store outputs that no result link reaches",
  description:
    "Keeps every output reachable from a live result-<system> link (and what those outputs refer to),\n" +
    "deletes the rest, and says how much space that freed.",
  positionals: [],
  options: { store: storeOption, json: { type: "boolean", description: "Print {\"entries\", \"bytes\"} as JSON." } },
  examples: [
    ["keel gc", "Free the space of outputs no result link uses."],
    ["rm result-qemu && keel gc", "Also let go of the qemu system's outputs."],
  ],
  async run(context, { values }) {
    const store = new Store(storeDir(context.env, values.store, context.cwd));
    const builders = await store.activeBuilders();
    if (builders.length > 0) {
      throw new UsageError(
        `keel (pid ${builders.join(", ")}) is building into ${store.root}; what it has built so far is not a root yet.\n` +
          "Fix: run keel gc when that build has finished.",
      );
    }
    const freed = await store.gc();
    context.out.stdout(
      values.json
        ? `${JSON.stringify(freed)}\n`
        : `deleted ${freed.entries} store ${freed.entries === 1 ? "entry" : "entries"}, freed ${formatBytes(freed.bytes)} (${freed.bytes} bytes)\n`,
    );
    return 0;
  },
});
