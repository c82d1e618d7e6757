import path from "node:path";
import { describePlan } from "../steps/realize.js";
import { defineCommand, systemArgument } from "./command.js";
import { subPlan } from "../plan/plan.js";
import { planFor, realizeShowingProgress, stepOf, storeOption, verboseOption } from "./planning.js";

export const buildCommand = defineCommand({
  name: "build",
  summary: "build a system's kernel, initrd and root filesystem into the store",
  description:
    "Plans the system's steps (kernel, initrd, rootfs, system), builds those not in the store, and links\n" +
    "result-<system> next to keel.config.ts to the output (a root for `keel gc`). A step whose inputs\n" +
    "did not change is not built again. Progress goes to standard error; the output path to standard output.",
  positionals: [systemArgument, { name: "step", required: false, description: "Build only this step and what it needs (e.g. kernel); no result link." }],
  options: {
    "dry-run": { type: "boolean", description: "List the steps, their hashes and what would be built; build nothing." },
    json: { type: "boolean", description: "Print progress as JSON events, one per line." },
    "no-link": { type: "boolean", description: "Do not create the result-<system> link." },
    store: storeOption,
    verbose: verboseOption,
  },
  examples: [
    ["keel build qemu", "Build the VM guest; prints the store path of the result."],
    ["keel build qemu --dry-run", "Show which steps are cached and which would be built."],
    ["keel build aethelred kernel", "Build only aethelred's kernel (and its source); prints the kernel's store path."],
    ["keel build aethelred --verbose", "Also print each command (the kernel's make lines) as it runs."],
    ["keel build aethelred --json", "Progress as JSON events for scripts."],
  ],
  async run(context, { values, positionals }) {
    const [system = "", only] = positionals;
    const whole = await planFor(context, system, values.store);
    const planned = { ...whole, plan: subPlan(whole.plan, only === undefined ? whole.plan.top : stepOf(whole.plan, only)) };
    const { plan, store } = planned;
    if (values["dry-run"]) {
      const steps = describePlan(plan, store);
      if (values.json) context.out.stdout(`${JSON.stringify(steps, null, 2)}\n`);
      else for (const s of steps) context.out.stdout(`${s.step.padEnd(8)} ${s.hash}  ${s.cached ? "cached  " : "to build"}  ${s.path}\n`);
      return 0;
    }
    const realized = await realizeShowingProgress(context, planned, values.json === true, values.verbose === true);
    if ("exitCode" in realized) return realized.exitCode;
    if (!values["no-link"] && only === undefined) {
      const link = path.join(path.dirname((await context.project()).file), `result-${system}`);
      await store.addRoot(link, realized.path);
    }
    if (!values.json) context.out.stdout(`${realized.path}\n`);
    return 0;
  },
});
