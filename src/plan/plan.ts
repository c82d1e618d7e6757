// Planning: a resolved system becomes a DAG of build steps, each identified by
// a hash of exactly what it reads — its slice of the configuration, its input
// steps' hashes, the host facts it depends on, and the step's own version. Pure
// and fast: whether anything needs building is decided here.
import { createHash } from "node:crypto";
import type { ResolvedSystem } from "../config/project.js";
import type { LockedInput } from "../inputs/lock.js";
import { isNamedBaseConfig } from "../options/kernel.js";

export type StepKind = "source" | "kernel" | "rootfs" | "initrd" | "system" | "image";

export interface Step {
  readonly kind: StepKind;
  /** The store name: `<hash>-<name>`. */
  readonly name: string;
  readonly hash: string;
  /** Steps whose outputs this one reads, by role. */
  readonly inputs: Readonly<Partial<Record<StepKind, Step>>>;
  /**
   * Inputs the step reads only near its end: it may start while they are
   * still being built, and its builder waits for their output to appear.
   */
  readonly lateInputs: readonly StepKind[];
  /** What the step reads from the configuration and the host: the input of its hash. */
  readonly slice: unknown;
  /**
   * What the builder needs that does not change its output, so is not
   * hashed: where things are on this machine, which directory to reuse.
   */
  readonly local?: unknown;
}

export interface BuildPlan {
  readonly system: string;
  /** Dependencies before dependents. */
  readonly steps: readonly Step[];
  /** The step whose output is the whole system. */
  readonly top: Step;
}

/** What planning needs to know of the build host. */
export interface HostFacts {
  /** The Debian mirror when `distro.mirror` is null: the host's apt sources. */
  readonly mirror: string;
  readonly arch: string;
  /** The hash of the busybox binary the initrd is made with. */
  readonly busybox: string;
  /** The hashes of files the configuration names (`environment.etc.*.source`, kernel config fragments), by path. */
  readonly files: Readonly<Record<string, string>>;
  /** The input `boot.kernel.source` names, as keel.lock pins it or as its tree is now. */
  readonly kernelSource?: KernelSource;
}

/** A kernel source: pinned (fetched into the store once) or a tree used in place. */
export type KernelSource =
  | { readonly kind: "pinned"; readonly input: string; readonly locked: LockedInput; readonly location: string }
  | { readonly kind: "tree"; readonly input: string; readonly path: string; readonly fingerprint: string };

/** Bump a step's version when what its builder makes from the same inputs changes. */
const versions: Record<StepKind, number> = { source: 1, kernel: 2, rootfs: 3, initrd: 3, system: 1, image: 1 };

function stepHash(kind: StepKind, slice: unknown, inputs: Readonly<Partial<Record<StepKind, Step>>>): string {
  const inputHashes = Object.fromEntries(Object.entries(inputs).map(([role, step]) => [role, step.hash]));
  return createHash("sha256")
    .update(canonicalJson({ kind, version: versions[kind], slice, inputs: inputHashes }))
    .digest("hex")
    .slice(0, 32);
}

function makeStep(
  kind: StepKind,
  name: string,
  slice: unknown,
  inputs: Readonly<Partial<Record<StepKind, Step>>> = {},
  lateInputs: readonly StepKind[] = [],
  local?: unknown,
): Step {
  return { kind, name, hash: stepHash(kind, slice, inputs), inputs, lateInputs, slice, ...(local === undefined ? {} : { local }) };
}

/** JSON with sorted keys, so that equal values hash equally. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
    return `{${entries.join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

function distroOf(config: ResolvedSystem, host: HostFacts) {
  return {
    suite: config.distro.suite,
    mirror: config.distro.mirror ?? host.mirror,
    components: config.distro.components,
    arch: host.arch,
  };
}

/** Whether the initrd is needed: modules to load before the root file system, or a root found by label or UUID. */
export function needsInitrd(config: ResolvedSystem): boolean {
  const root = config.fileSystems["/"];
  const byName = root !== undefined && (root.label !== null || /^(UUID=|LABEL=|\/dev\/disk\/by-)/.test(root.device ?? ""));
  return config.boot.initrd.availableKernelModules.length > 0 || config.boot.initrd.kernelModules.length > 0 || byName;
}

/** The label a root file system image gets: the one the configuration finds it by, else "keel-root". */
function rootLabel(root: ResolvedSystem["fileSystems"][string] | null): string {
  return root?.label ?? /^\/dev\/disk\/by-label\/(.+)$/.exec(root?.device ?? "")?.[1] ?? "keel-root";
}

export interface PlanOptions {
  /** Also make the root file system's disk image (what `keel run` boots). */
  readonly image?: boolean;
}

/** What identifies a pinned input's content: the location it came from is not part of it. */
function pinnedIdentity(locked: LockedInput): unknown {
  switch (locked.type) {
    case "debian-source":
      return { type: locked.type, package: locked.package, version: locked.version, sha256: locked.sha256 };
    case "tarball":
      return { type: locked.type, sha256: locked.sha256 };
    case "git":
      return { type: locked.type, commit: locked.commit };
  }
}

/** What the source kernel step's builder needs beyond its slice. */
export interface SourceKernelLocal {
  /** The persistent Kbuild output directory's name under the store's builds/. */
  readonly workspace: string;
  /** A tree used in place (a path input); else the source step's output is the tree. */
  readonly tree?: string;
  /** The base config file (baseConfig given as a path) and the fragments, as paths here. */
  readonly baseConfigFile?: string;
  readonly fragments: readonly string[];
}

function kernelSteps(system: string, config: ResolvedSystem, host: HostFacts): Step[] {
  const kernel = config.boot.kernel;
  const distro = distroOf(config, host);
  if (kernel.source === null) {
    return [makeStep("kernel", `kernel-${kernel.debianPackage}`, { flavour: "debian", package: kernel.debianPackage, distro })];
  }
  const source = host.kernelSource;
  if (source === undefined || source.input !== kernel.source) throw new Error(`planSystem: no host facts for the kernel source input ${kernel.source}`);
  const fetched =
    source.kind === "pinned"
      ? makeStep("source", `source-${source.input}`, pinnedIdentity(source.locked), {}, [], { input: source.input, locked: source.locked, location: source.location })
      : undefined;
  const baseIsFile = !isNamedBaseConfig(kernel.baseConfig);
  const local: SourceKernelLocal = {
    workspace: `kernel-${source.input}-${host.arch}-${system}`,
    ...(source.kind === "tree" ? { tree: source.path } : {}),
    ...(baseIsFile ? { baseConfigFile: kernel.baseConfig } : {}),
    fragments: kernel.configFragments,
  };
  const step = makeStep(
    "kernel",
    `kernel-${source.input}`,
    {
      flavour: "source",
      tree: source.kind === "tree" ? source.fingerprint : null,
      arch: host.arch,
      baseConfig: baseIsFile ? { file: host.files[kernel.baseConfig] ?? "missing" } : kernel.baseConfig,
      // Debian's own config comes from its prebuilt kernel package.
      debian: kernel.baseConfig === "debian" ? { package: kernel.debianPackage, distro } : null,
      fragments: kernel.configFragments.map((f) => host.files[f] ?? "missing"),
      settings: kernel.settings,
    },
    fetched ? { source: fetched } : {},
    [],
    local,
  );
  return fetched ? [fetched, step] : [step];
}

export function planSystem(system: string, config: ResolvedSystem, host: HostFacts, options: PlanOptions = {}): BuildPlan {
  const distro = distroOf(config, host);
  const kernelPlan = kernelSteps(system, config, host);
  const kernel = kernelPlan[kernelPlan.length - 1] as Step;
  const etc = Object.fromEntries(
    Object.entries(config.environment.etc).map(([name, file]) => [
      name,
      { ...file, sourceHash: file.source === null ? null : (host.files[file.source] ?? "missing") },
    ]),
  );
  const rootfs = makeStep(
    "rootfs",
    `rootfs-${config.networking.hostName}`,
    {
      distro,
      packages: config.packages,
      hostName: config.networking.hostName,
      networking: config.networking,
      users: config.users,
      services: config.systemd.services,
      etc,
      fileSystems: config.fileSystems,
      swapDevices: config.swapDevices,
      timeZone: config.time.timeZone,
      kernelModules: config.boot.kernelModules,
    },
    { kernel },
    // mmdebstrap needs the kernel's modules only in its last hooks: the two steps overlap.
    ["kernel"],
  );
  const root = config.fileSystems["/"] ?? null;
  // keel run's stage 1 lays the VM's disk over the image: it always needs the initrd.
  const initrd = needsInitrd(config) || options.image === true
    ? makeStep(
        "initrd",
        "initrd",
        {
          availableKernelModules: config.boot.initrd.availableKernelModules,
          kernelModules: config.boot.initrd.kernelModules,
          root,
          busybox: host.busybox,
        },
        { kernel },
      )
    : undefined;
  const top = makeStep(
    "system",
    `system-${system}`,
    { kernelParams: config.boot.kernelParams },
    initrd ? { kernel, initrd, rootfs } : { kernel, rootfs },
  );
  const steps = [...kernelPlan, ...(initrd ? [initrd] : []), rootfs, top];
  if (options.image === true) {
    // The image is the root file system only: its size is the VM's disk size, its label the one stage 1 finds.
    steps.push(makeStep("image", `image-${config.networking.hostName}`, { diskSize: config.virtualisation.diskSize, label: rootLabel(root) }, { rootfs }));
  }
  return { system, steps, top };
}

/** The part of a plan that builds one step: it and what it reads, in the plan's order. */
export function subPlan(plan: BuildPlan, top: Step): BuildPlan {
  const needed = new Set<Step>();
  const visit = (step: Step): void => {
    if (needed.has(step)) return;
    needed.add(step);
    for (const input of Object.values(step.inputs)) visit(input);
  };
  visit(top);
  return { system: plan.system, steps: plan.steps.filter((s) => needed.has(s)), top };
}
