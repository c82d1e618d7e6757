import { Store, storeDir } from "../store/store.js";
import { defineCommand } from "./command.js";
import { formatBytes } from "./output.js";
import { storeOption } from "./planning.js";

export const gcCommand = defineCommand({
  name: "gc",
  summary: "delete store outputs that no result link reaches",
  description:
    "Keeps every output reachable from a live result-<system> link (and what those outputs refer to),\n" +
    "deletes the rest, and says how much space that freed. It waits for builds into the store to end\n" +
    "(what they built is not a root yet), and builds started meanwhile wait for it.",
  positionals: [],
  options: { store: storeOption, json: { type: "boolean", description: "Print {\"entries\", \"bytes\"} as JSON." } },
  examples: [
    ["keel gc", "Free the space of outputs no result link uses."],
    ["rm result-qemu && keel gc", "Also let go of the qemu system's outputs."],
  ],
  async run(context, { values }) {
    const store = new Store(storeDir(context.env, values.store, context.cwd));
    const freed = await store.gc({
      onWait: (pid) => context.out.stderr(`keel gc: waiting for keel (pid ${pid}), which is building into ${store.root}; what it builds is not a root until it ends.\n`),
    });
    context.out.stdout(
      values.json
        ? `${JSON.stringify(freed)}\n`
        : `deleted ${freed.entries} store ${freed.entries === 1 ? "entry" : "entries"}, freed ${formatBytes(freed.bytes)} (${freed.bytes} bytes)\n`,
    );
    return 0;
  },
});
