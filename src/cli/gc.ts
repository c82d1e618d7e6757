import { generationsToRemove, readState, removeGenerations } from "../deploy/target.js";
import { UsageError } from "../errors.js";
import { Store, storeDir } from "../store/store.js";
import { defineCommand, type Context } from "./command.js";
import { formatBytes } from "./output.js";
import { planFor, storeOption } from "./planning.js";
import { openTarget, targetOptions } from "./target.js";

export const gcCommand = defineCommand({
  name: "gc",
  summary: "delete store outputs that no result link reaches, or a machine's old generations (--target)",
  description:
    "Keeps every output reachable from a live result-<system> link (and what those outputs refer to),\n" +
    "deletes the rest, and says how much space that freed. It waits for builds into the store to end\n" +
    "(what they built is not a root yet), and builds started meanwhile wait for it.\n" +
    "With --target <system> --keep N it cleans the system's machine instead: every generation but the N newest,\n" +
    "never the one it runs nor the one it boots by default. Their boot entries, kernels and initrds go from the ESP\n" +
    "first, then their trees from /keel, with the copies deploys left unfinished.",
  positionals: [],
  options: {
    store: storeOption,
    json: { type: "boolean", description: "Print what was freed as JSON." },
    target: { type: "string", value: "system", description: "Clean that system's machine (deploy.targetHost or --target-host) instead of the store." },
    keep: { type: "string", value: "N", description: "With --target: how many of the newest generations to keep (at least 1)." },
    "dry-run": { type: "boolean", description: "With --target: say which generations would go, removing nothing." },
    "target-host": targetOptions["target-host"],
    "ssh-opts": targetOptions["ssh-opts"],
  },
  examples: [
    ["keel gc", "Free the space of outputs no result link uses."],
    ["rm result-qemu && keel gc", "Also let go of the qemu system's outputs."],
    ["keel gc --target aethelred --keep 3", "Keep the office machine's three newest generations (and the running and default ones)."],
  ],
  async run(context, { values }) {
    if (values.target !== undefined) return machineGc(context, values.target, values);
    const machineOnly = (["keep", "dry-run", "target-host", "ssh-opts"] as const).find((o) => values[o] !== undefined);
    if (machineOnly !== undefined) throw new UsageError(`keel gc: --${machineOnly} cleans a machine, and needs --target <system>.\nFix: add --target <system>, or drop --${machineOnly}.`);
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

const generations = (numbers: readonly number[]) => `generation${numbers.length === 1 ? "" : "s"} ${numbers.join(", ")}`;

async function machineGc(
  context: Context,
  system: string,
  values: { readonly keep?: string; readonly "dry-run"?: boolean; readonly json?: boolean; readonly store?: string; readonly "target-host"?: string; readonly "ssh-opts"?: string },
): Promise<number> {
  const keep = Number(values.keep);
  if (values.keep === undefined || !Number.isInteger(keep) || keep < 1) {
    throw new UsageError(`keel gc --target ${system}: ${values.keep === undefined ? "how many generations to keep?" : `--keep ${values.keep} is not a number of generations`}.\nFix: give --keep N, N at least 1 (the running and default generations are always kept).`);
  }
  const planned = await planFor(context, system, values.store);
  const remote = await openTarget(context, "gc", planned.evaluated.config, values);
  try {
    const state = await readState(remote);
    if (state.trial) {
      throw new UsageError(`keel gc: ${remote.where} is in a trial boot of generation ${state.running}; which generation it falls back to is not settled.\nFix: let the deploy finish (or the trial roll back), then run keel gc again.`);
    }
    const remove = generationsToRemove(state, keep);
    const kept = [...new Set([...state.generations, ...state.entries.map((e) => e.generation)])].filter((g) => !remove.includes(g)).sort((a, b) => a - b);
    const leftovers = state.incoming.length === 0 ? "" : ` and ${state.incoming.length} unfinished ${state.incoming.length === 1 ? "copy" : "copies"}`;
    if (values["dry-run"] || (remove.length === 0 && state.incoming.length === 0)) {
      const what = remove.length === 0 ? `no generation${leftovers === "" ? "" : ","}${leftovers}` : `${generations(remove)}${leftovers}`;
      context.out.stdout(`${values["dry-run"] ? "would remove" : "removed"} ${what} from ${remote.where}; kept ${kept.join(", ")}\n`);
      return 0;
    }
    await removeGenerations(remote, state, remove);
    const after = await readState(remote);
    const freed = { generations: remove, esp: after.espFree - state.espFree, root: after.rootFree - state.rootFree };
    context.out.stdout(
      values.json
        ? `${JSON.stringify(freed)}\n`
        : `removed ${remove.length === 0 ? "no generation" : generations(remove)}${leftovers} from ${remote.where}, freed ${formatBytes(Math.max(0, freed.esp))} on the ESP and ${formatBytes(Math.max(0, freed.root))} on /keel; kept ${kept.join(", ")}\n`,
    );
    return 0;
  } finally {
    await remote.disconnect();
    await planned.store.close();
  }
}
