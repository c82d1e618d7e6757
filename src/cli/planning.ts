// What build, log and shell share: the system evaluated, planned and placed in a store.
import { evaluateSystem, type EvaluatedSystem } from "../config/project.js";
import { hostFacts } from "../host/facts.js";
import { planSystem, type BuildPlan, type Step, type StepKind } from "../plan/plan.js";
import { Store, storeDir } from "../store/store.js";
import { UsageError } from "../errors.js";
import type { Context } from "./command.js";

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

export async function planFor(context: Context, system: string, store: string | undefined): Promise<PlannedSystem> {
  const evaluated = evaluateSystem(await context.project(), system);
  for (const warning of evaluated.warnings) context.out.stderr(`warning: ${warning}\n`);
  const plan = planSystem(system, evaluated.config, hostFacts(evaluated.config));
  return { evaluated, plan, store: new Store(storeDir(context.env, store, context.cwd)) };
}

export function stepOf(plan: BuildPlan, kind: string): Step {
  const step = plan.steps.find((s) => s.kind === (kind as StepKind));
  if (step === undefined) {
    throw new UsageError(
      `The system \`${plan.system}' has no step \`${kind}'. Its steps: ${plan.steps.map((s) => s.kind).join(", ")}.\n` +
        "Fix: name one of those.",
    );
  }
  return step;
}
