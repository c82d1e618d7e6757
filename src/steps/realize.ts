// Realizing a plan: each step not in the store is built into it once its
// inputs are there, by its kind's builder, and every step reports start,
// wait, done or failure as an event named by the step's id.
import path from "node:path";
import type { BuildPlan, Step } from "../plan/plan.js";
import type { Store } from "../store/store.js";
import type { BuildContext } from "./context.js";

export type BuildEvent =
  | { readonly type: "plan"; readonly system: string; readonly steps: readonly PlannedStep[] }
  | { readonly type: "start"; readonly step: string }
  | { readonly type: "wait"; readonly step: string; readonly pid: number }
  | { readonly type: "progress"; readonly step: string; readonly text: string }
  | { readonly type: "command"; readonly step: string; readonly line: string }
  | {
      readonly type: "done";
      readonly step: string;
      readonly status: "built" | "cached";
      readonly seconds: number;
      readonly bytes: number;
      readonly path: string;
      /** What the builder said (the kernel's ccache hit rate). */
      readonly note?: string;
    }
  | { readonly type: "failed"; readonly step: string; readonly seconds: number; readonly log: string }
  | { readonly type: "summary"; readonly system: string; readonly path: string; readonly built: number; readonly cached: number; readonly seconds: number };

export interface PlannedStep {
  readonly step: string;
  readonly hash: string;
  readonly path: string;
  readonly cached: boolean;
}

export interface RealizeOptions {
  readonly env: NodeJS.ProcessEnv;
  readonly signal: AbortSignal;
  readonly onEvent: (event: BuildEvent) => void;
  /** Also report every command line the steps run (`--verbose`). */
  readonly verbose?: boolean;
}

export function describePlan(plan: BuildPlan, store: Store): PlannedStep[] {
  return plan.steps.map((s) => ({ step: s.id, hash: s.hash, path: store.pathOf(s.hash, s.name), cached: store.has(s.hash, s.name) }));
}

/**
 * Builds what the plan's steps miss and returns the store path of its top. A
 * step starts when its inputs are built; the first failure stops the other
 * running steps.
 */
export async function realizePlan(plan: BuildPlan, store: Store, options: RealizeOptions): Promise<string> {
  const started = performance.now();
  options.onEvent({ type: "plan", system: plan.system, steps: describePlan(plan, store) });
  const stopOthers = new AbortController();
  const signal = AbortSignal.any([options.signal, stopOthers.signal]);
  let built = 0;
  let cached = 0;
  let firstFailure: unknown;
  const running = new Map<Step, Promise<string>>();
  const contextFor = (step: Step, log: string): BuildContext => ({
    log,
    debs: path.join(store.root, "debs"),
    env: options.env,
    baseEnv: options.env,
    signal,
    progress: (text) => options.onEvent({ type: "progress", step: step.id, text }),
    ...(options.verbose ? { onCommand: (line: string) => options.onEvent({ type: "command", step: step.id, line }) } : {}),
  });

  const realize = (step: Step): Promise<string> => {
    let promise = running.get(step);
    if (promise) return promise;
    promise = (async () => {
      const inputs = Object.entries<Step>(step.inputs);
      const paths = Object.fromEntries(await Promise.all(inputs.map(async ([role, input]) => [role, await realize(input)] as const)));
      const stepStarted = performance.now();
      if (!store.has(step.hash, step.name)) options.onEvent({ type: "start", step: step.id });
      const workspace = step.kind.workspace?.(step.local);
      let result;
      try {
        result = await store.build({
          hash: step.hash,
          name: step.name,
          references: Object.values(paths),
          onWait: (pid) => options.onEvent({ type: "wait", step: step.id, pid }),
          signal,
          ...(workspace ? { workspace } : {}),
          build: (out, log, directory) => step.kind.build(contextFor(step, log), out, { slice: step.slice, inputs: paths, local: step.local, workspace: directory }),
        });
      } catch (error) {
        // The first failure is the one to report; the steps it stops fail after it.
        if (firstFailure === undefined) firstFailure = error;
        stopOthers.abort("another step failed");
        options.onEvent({ type: "failed", step: step.id, seconds: (performance.now() - stepStarted) / 1000, log: store.logOf(step.hash, step.name) });
        throw error;
      }
      if (result.built) built++;
      else cached++;
      const seconds = (performance.now() - stepStarted) / 1000;
      options.onEvent({
        type: "done",
        step: step.id,
        status: result.built ? "built" : "cached",
        seconds,
        bytes: result.bytes,
        path: result.path,
        ...(result.note ? { note: result.note } : {}),
      });
      return result.path;
    })();
    running.set(step, promise);
    return promise;
  };

  await Promise.allSettled(plan.steps.map(realize));
  if (firstFailure !== undefined) throw firstFailure;
  const top = store.pathOf(plan.top.hash, plan.top.name);
  options.onEvent({ type: "summary", system: plan.system, path: top, built, cached, seconds: (performance.now() - started) / 1000 });
  return top;
}
