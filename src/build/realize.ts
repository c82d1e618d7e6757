// Realizing a plan: each step not in the store is built into it once its
// inputs are there (or, for late inputs, under way), and every step reports
// start, wait, done or failure as an event.
import type { BuildPlan, Step, StepKind } from "../plan/plan.js";
import type { Store } from "../store/store.js";
import type { BuildContext } from "./context.js";
import { buildImage, type ImageSlice } from "./image.js";
import { buildInitrd, type InitrdSlice } from "./initrd.js";
import { buildDebianKernel, type DebianKernelSlice } from "./kernel.js";
import { buildRootfs, type RootfsSlice } from "./rootfs.js";
import { buildSystem } from "./system.js";

export type BuildEvent =
  | { readonly type: "plan"; readonly system: string; readonly steps: readonly PlannedStep[] }
  | { readonly type: "start"; readonly step: string }
  | { readonly type: "wait"; readonly step: string; readonly pid: number }
  | { readonly type: "done"; readonly step: string; readonly status: "built" | "cached"; readonly seconds: number; readonly bytes: number; readonly path: string }
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
}

export function describePlan(plan: BuildPlan, store: Store): PlannedStep[] {
  return plan.steps.map((s) => ({ step: s.kind, hash: s.hash, path: store.pathOf(s.hash, s.name), cached: store.has(s.hash, s.name) }));
}

async function buildStep(step: Step, out: string, context: BuildContext, inputs: Record<string, string>, lateReady: Promise<unknown>): Promise<void> {
  switch (step.kind) {
    case "kernel":
      return buildDebianKernel(context, out, step.slice as DebianKernelSlice);
    case "initrd":
      return buildInitrd(out, inputs.kernel as string, step.slice as InitrdSlice);
    case "rootfs":
      return buildRootfs(context, out, step.slice as RootfsSlice, { kernel: inputs.kernel as string, kernelReady: lateReady });
    case "image":
      return buildImage(context, out, inputs.rootfs as string, step.slice as ImageSlice);
    case "system":
      return buildSystem(out, (step.slice as { kernelParams: string[] }).kernelParams, {
        kernel: inputs.kernel as string,
        rootfs: inputs.rootfs as string,
        ...(inputs.initrd ? { initrd: inputs.initrd } : {}),
      });
  }
}

/**
 * Builds what is missing and returns the store path of the whole system. A
 * step starts when its inputs are built, or started for its late inputs; the
 * first failure stops the other running steps.
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

  const realize = (step: Step): Promise<string> => {
    let promise = running.get(step);
    if (promise) return promise;
    promise = (async () => {
      const inputs = Object.entries(step.inputs) as [StepKind, Step][];
      await Promise.all(inputs.map(([role, input]) => (step.lateInputs.includes(role) ? undefined : realize(input))));
      const lateReady = Promise.all(inputs.flatMap(([role, input]) => (step.lateInputs.includes(role) ? [realize(input)] : [])));
      lateReady.catch(() => undefined);
      const paths = Object.fromEntries(inputs.map(([role, input]) => [role, store.pathOf(input.hash, input.name)]));
      const stepStarted = performance.now();
      if (!store.has(step.hash, step.name)) options.onEvent({ type: "start", step: step.kind });
      let result;
      try {
        result = await store.build({
          hash: step.hash,
          name: step.name,
          references: Object.values(paths),
          onWait: (pid) => options.onEvent({ type: "wait", step: step.kind, pid }),
          build: (out, log) => buildStep(step, out, { log, env: options.env, signal }, paths, lateReady),
        });
      } catch (error) {
        // The first failure is the one to report; the steps it stops fail after it.
        if (firstFailure === undefined) firstFailure = error;
        stopOthers.abort("another step failed");
        options.onEvent({ type: "failed", step: step.kind, seconds: (performance.now() - stepStarted) / 1000, log: store.logOf(step.hash, step.name) });
        throw error;
      }
      if (result.built) built++;
      else cached++;
      const seconds = (performance.now() - stepStarted) / 1000;
      options.onEvent({ type: "done", step: step.kind, status: result.built ? "built" : "cached", seconds, bytes: result.bytes, path: result.path });
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
