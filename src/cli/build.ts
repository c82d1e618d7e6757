import path from "node:path";
import { describePlan, realizePlan } from "../build/realize.js";
import { abandonBuilds } from "../store/store.js";
import { defineCommand, systemArgument } from "./command.js";
import { buildReporter } from "./output.js";
import { planFor, storeOption } from "./planning.js";

const exitCodes = { SIGINT: 130, SIGTERM: 143 } as const;
/** How long a stopped tool may take to exit before keel removes what it left and exits anyway. */
const abandonAfter = 15_000;

export const buildCommand = defineCommand({
  name: "build",
  summary: "build a system's kernel, initrd and root filesystem into the store",
  description:
    "Plans the system's steps (kernel, initrd, rootfs, system), builds those not in the store, and links\n" +
    "result-<system> next to keel.config.ts to the output (a root for `keel gc`). A step whose inputs\n" +
    "did not change is not built again. Progress goes to standard error; the output path to standard output.",
  positionals: [systemArgument],
  options: {
    "dry-run": { type: "boolean", description: "List the steps, their hashes and what would be built; build nothing." },
    json: { type: "boolean", description: "Print progress as JSON events, one per line." },
    "no-link": { type: "boolean", description: "Do not create the result-<system> link." },
    store: storeOption,
  },
  examples: [
    ["keel build qemu", "Build the VM guest; prints the store path of the result."],
    ["keel build qemu --dry-run", "Show which steps are cached and which would be built."],
    ["keel build aethelred --json", "Progress as JSON events for scripts."],
  ],
  async run(context, { values, positionals }) {
    const system = positionals[0] ?? "";
    const { plan, store } = await planFor(context, system, values.store);
    if (values["dry-run"]) {
      const steps = describePlan(plan, store);
      if (values.json) context.out.stdout(`${JSON.stringify(steps, null, 2)}\n`);
      else for (const s of steps) context.out.stdout(`${s.step.padEnd(8)} ${s.hash}  ${s.cached ? "cached  " : "to build"}  ${s.path}\n`);
      return 0;
    }
    const reporter = buildReporter(context.out, values.json ? "json" : context.out.interactive ? "live" : "plain");
    // On Ctrl-C or a kill, the running tool is stopped and the build unwinds:
    // the step's temporary directory is removed once the tool has exited.
    const abort = new AbortController();
    let interrupted: keyof typeof exitCodes | undefined;
    const stop = (signal: keyof typeof exitCodes): void => {
      interrupted = signal;
      abort.abort();
      setTimeout(() => void abandonBuilds().finally(() => process.exit(exitCodes[signal])), abandonAfter).unref();
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    try {
      const result = await realizePlan(plan, store, { env: context.env, signal: abort.signal, onEvent: (e) => reporter.event(e) });
      if (!values["no-link"]) {
        const link = path.join(path.dirname((await context.project()).file), `result-${system}`);
        await store.addRoot(link, result);
      }
      if (!values.json) context.out.stdout(`${result}\n`);
      return 0;
    } catch (error) {
      if (interrupted === undefined) throw error;
      context.out.stderr(`keel build: interrupted (${interrupted}); the unfinished step was discarded.\n`);
      return exitCodes[interrupted];
    } finally {
      reporter.close();
      process.removeListener("SIGINT", stop);
      process.removeListener("SIGTERM", stop);
    }
  },
});
