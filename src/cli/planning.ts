// What build, log and shell share: the system evaluated, planned and placed in a store.
import path from "node:path";
import { realizePlan } from "../steps/realize.js";
import { evaluateSystem, type EvaluateOptions, type EvaluatedSystem } from "../config/project.js";
import { hostFacts } from "../host/facts.js";
import { planSystem, type BuildPlan, type Step } from "../plan/plan.js";
import { Store, storeDir } from "../store/store.js";
import { stillRunning } from "../host/exec.js";
import { UsageError } from "../errors.js";
import type { Context } from "./command.js";
import { buildReporter } from "./output.js";

export const verboseOption = {
  type: "boolean",
  short: "v",
  description: "Show every command the build runs (make, mmdebstrap, …) with the environment it sets.",
} as const;

export const storeOption = {
  type: "string",
  value: "dir",
  description: "The store directory (default: $KEEL_STORE, else $XDG_CACHE_HOME/keel/store).",
} as const;

export interface PlannedSystem {
  readonly evaluated: EvaluatedSystem;
  readonly plan: BuildPlan;
  readonly store: Store;
}

/**
 * The system evaluated and planned. With `vm`, its VM variant, as `keel run`
 * boots it: planned against the system itself, so that the two share every
 * step but the image when the variant only adds files under /etc. With
 * `sourceTree`, that kernel tree is the system's kernel source for this command.
 */
export async function planFor(context: Context, system: string, store: string | undefined, options: EvaluateOptions = {}, sourceTree?: string): Promise<PlannedSystem> {
  const project = await context.project();
  const evaluated = evaluateSystem(project, system, options);
  for (const warning of evaluated.warnings) context.out.stderr(`warning: ${warning}\n`);
  const base = options.vm ? evaluateSystem(project, system).config : undefined;
  const host = hostFacts(system, evaluated.config, project, sourceTree);
  const source = host.kernelSource;
  if (source?.kind === "tree" && sourceTree !== undefined) {
    context.out.stderr(`keel: the input \`${source.input}' is the tree ${source.path} for this command (--source); keel.lock and keel.override.json are unchanged.\n`);
  } else if (source?.kind === "tree" && source.override) {
    context.out.stderr(
      `keel: the input \`${source.input}' is the tree ${source.path} (${path.basename(source.override.file)}${source.override.from ? `; keel.lock pins ${source.override.from}` : ""}); ` +
        `\`keel kernel checkout ${system} --reset' builds from keel.lock's again.\n`,
    );
  }
  const plan = planSystem(system, evaluated.config, host, base === undefined ? {} : { base });
  return { evaluated, plan, store: new Store(storeDir(context.env, store, context.cwd)) };
}

export function stepOf(plan: BuildPlan, id: string): Step {
  const step = plan.steps.find((s) => s.id === id);
  if (step === undefined) {
    throw new UsageError(
      `The system \`${plan.system}' has no step \`${id}'. Its steps: ${plan.steps.map((s) => s.id).join(", ")}.\n` +
        "Fix: name one of those.",
    );
  }
  return step;
}

const exitCodes = { SIGINT: 130, SIGTERM: 143 } as const;

/** The system's store path, or the exit code when Ctrl-C or a kill stopped the build. */
export type Realized = { readonly path: string } | { readonly exitCode: number };

/**
 * Builds what the plan misses, showing progress. On Ctrl-C or a kill, the
 * running tools get SIGTERM (SIGKILL 10 s later) and the build unwinds: a
 * step's temporary directory and locks go only once every process of its
 * tools has exited. Until then keel does not exit; another Ctrl-C says what
 * it still waits for.
 */
export async function realizeShowingProgress(context: Context, planned: PlannedSystem, json: boolean, verbose = false): Promise<Realized> {
  // Command lines are printed as they run: a redrawn display would overwrite them.
  const reporter = buildReporter(context.out, json ? "json" : context.out.interactive && !verbose ? "live" : "plain");
  const abort = new AbortController();
  let interrupted: keyof typeof exitCodes | undefined;
  const stop = (signal: keyof typeof exitCodes): void => {
    if (interrupted !== undefined) {
      const waiting = stillRunning();
      context.out.stderr(
        waiting.length === 0
          ? "keel: stopping; nothing runs any more.\n"
          : `keel: stopping; still waiting for (SIGKILL follows 10 s after SIGTERM):\n${waiting.map((line) => `  ${line}\n`).join("")}`,
      );
      return;
    }
    interrupted = signal;
    abort.abort("keel was interrupted");
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  try {
    return { path: await realizePlan(planned.plan, planned.store, { env: context.env, signal: abort.signal, verbose, onEvent: (e) => reporter.event(e) }) };
  } catch (error) {
    if (interrupted === undefined) throw error;
    context.out.stderr(`keel: interrupted (${interrupted}); the unfinished steps were discarded once their tools had exited.\n`);
    return { exitCode: exitCodes[interrupted] };
  } finally {
    reporter.close();
    process.removeListener("SIGINT", stop);
    process.removeListener("SIGTERM", stop);
  }
}
