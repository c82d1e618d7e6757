// Realizing a plan: each step not in the store is built into it once its
// inputs are there (or, for late inputs, under way), and every step reports
// start, wait, done or failure as an event.
import type { BuildPlan, SourceKernelLocal, Step, StepKind } from "../plan/plan.js";
import type { Store } from "../store/store.js";
import type { BuildContext } from "./context.js";
import { buildImage, type ImageSlice } from "./image.js";
import { buildInitrd, type InitrdSlice } from "./initrd.js";
import { buildSourceKernel, type SourceKernelSlice } from "./kbuild.js";
import { buildDebianKernel, type DebianKernelSlice } from "./kernel.js";
import { buildRootfs, type RootfsSlice } from "./rootfs.js";
import { buildSource, type SourceLocal } from "./source.js";
import { buildSystem } from "./system.js";

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

/** The persistent directory a step reuses, if it has one. */
function workspaceOf(step: Step): string | undefined {
  return (step.local as { workspace?: string } | undefined)?.workspace;
}

export function describePlan(plan: BuildPlan, store: Store): PlannedStep[] {
  return plan.steps.map((s) => ({ step: s.kind, hash: s.hash, path: store.pathOf(s.hash, s.name), cached: store.has(s.hash, s.name) }));
}

function buildStep(
  step: Step,
  out: string,
  context: BuildContext,
  inputs: Record<string, string>,
  lateReady: Promise<unknown>,
  workspace: string | undefined,
): Promise<string | void> {
  switch (step.kind) {
    case "source":
      return buildSource(context, out, step.local as SourceLocal);
    case "kernel": {
      const slice = step.slice as SourceKernelSlice | (DebianKernelSlice & { flavour: "debian" });
      if (slice.flavour === "debian") return buildDebianKernel(context, out, slice);
      const local = step.local as SourceKernelLocal;
      return buildSourceKernel(context, out, slice, local, { src: inputs.source ?? (local.tree as string), obj: workspace as string });
    }
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
  const contextFor = (step: Step, log: string): BuildContext => ({
    log,
    env: options.env,
    baseEnv: options.env,
    signal,
    progress: (text) => options.onEvent({ type: "progress", step: step.kind, text }),
    ...(options.verbose ? { onCommand: (line: string) => options.onEvent({ type: "command", step: step.kind, line }) } : {}),
  });

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
      const workspace = workspaceOf(step);
      let result;
      try {
        result = await store.build({
          hash: step.hash,
          name: step.name,
          references: Object.values(paths),
          onWait: (pid) => options.onEvent({ type: "wait", step: step.kind, pid }),
          ...(workspace ? { workspace } : {}),
          build: (out, log, directory) => buildStep(step, out, contextFor(step, log), paths, lateReady, directory),
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
      options.onEvent({
        type: "done",
        step: step.kind,
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
