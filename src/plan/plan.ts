// Planning: a resolved system becomes a DAG of build steps, each identified by
// a hash of exactly what it reads — its slice of the configuration, its input
// steps' hashes, the host facts it depends on, and the step's own version. Pure
// and fast: whether anything needs building is decided here.
import { createHash } from "node:crypto";
import type { ResolvedSystem } from "../config/project.js";
import { ConfigError } from "../errors.js";

export type StepKind = "kernel" | "rootfs" | "initrd" | "system" | "image";

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
  /** The hashes of files named by `environment.etc.*.source`, by path. */
  readonly files: Readonly<Record<string, string>>;
}

/** Bump a step's version when what its builder makes from the same inputs changes. */
const versions: Record<StepKind, number> = { kernel: 1, rootfs: 3, initrd: 3, system: 1, image: 1 };

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
): Step {
  return { kind, name, hash: stepHash(kind, slice, inputs), inputs, lateInputs, slice };
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

export function planSystem(system: string, config: ResolvedSystem, host: HostFacts, options: PlanOptions = {}): BuildPlan {
  if (config.boot.kernel.source !== null) {
    throw new ConfigError(
      `boot.kernel.source is "${config.boot.kernel.source}", but keel does not build kernels from source yet; it would silently build Debian's kernel instead.\n` +
        "Fix: set boot.kernel.source to null to boot Debian's kernel (boot.kernel.debianPackage) until kernels from source land.",
    );
  }
  const distro = distroOf(config, host);
  const kernel = makeStep("kernel", `kernel-${config.boot.kernel.debianPackage}`, {
    flavour: "debian",
    package: config.boot.kernel.debianPackage,
    distro,
  });
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
  const steps = initrd ? [kernel, initrd, rootfs, top] : [kernel, rootfs, top];
  if (options.image === true) {
    // The image is the root file system only: its size is the VM's disk size, its label the one stage 1 finds.
    steps.push(makeStep("image", `image-${config.networking.hostName}`, { diskSize: config.virtualisation.diskSize, label: rootLabel(root) }, { rootfs }));
  }
  return { system, steps, top };
}
