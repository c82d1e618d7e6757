// Planning: a resolved system becomes a DAG of build steps, each identified by
// a hash of exactly what it reads — its slice of the configuration, its input
// steps' hashes, the host facts it depends on, and the step's own version. Pure
// and fast: whether anything needs building is decided here.
import { createHash } from "node:crypto";
import type { ResolvedSystem } from "../config/project.js";
import type { DebianPin, LockedInput } from "../inputs/lock.js";
import { debianMirror } from "../host/facts.js";
import { isNamedBaseConfig } from "../options/kernel.js";
import { diskIdentity, isoLabel } from "../image/layout.js";
import { diskStep } from "../steps/disk.js";
import { isoInitrdModules, isoStep } from "../steps/iso.js";
import { imageStep } from "../steps/image.js";
import { initrdStep } from "../steps/initrd.js";
import { sourceKernelStep, type SourceKernelLocal } from "../steps/kbuild.js";
import type { DebSource } from "../steps/debs.js";
import { debianKernelStep, type DebianKernelSlice } from "../steps/kernel.js";
import { unitActions } from "../options/systemd.js";
import { rootfsStep, type EtcFile, type RootfsSlice } from "../steps/rootfs.js";
import { sourceStep } from "../steps/source.js";
import type { Step, StepKind } from "../steps/step.js";
import { systemStep } from "../steps/system.js";

export type { Step } from "../steps/step.js";

export interface BuildPlan {
  readonly system: string;
  /** Every step of the system, dependencies before dependents. */
  readonly steps: readonly Step[];
  /** The step whose output is the whole system (what `keel build` makes). */
  readonly top: Step;
}

/** What planning needs to know of the build host. */
export interface HostFacts {
  /** Where pinned .debs are fetched from: `distro.mirror`, else the host's apt sources. Never hashed. */
  readonly mirror: string;
  readonly arch: string;
  /** The hash of the busybox binary the initrd is made with. */
  readonly busybox: string;
  /** The hashes of files the configuration names (`environment.etc.*.source`, kernel config fragments), by path. */
  readonly files: Readonly<Record<string, string>>;
  /** The input `boot.kernel.source` names, as keel.lock pins it or as its tree is now. */
  readonly kernelSource?: KernelSource;
  /** The system's Debian packages (and Debian's kernel, where used) as keel.lock pins them. */
  readonly debian: DebianPin;
}

/** What a kernel's steps read of the host: Debian's pin (and mirror) only for Debian's kernel or its config. */
export type KernelHostFacts = Pick<HostFacts, "arch" | "files" | "kernelSource"> & Partial<Pick<HostFacts, "mirror" | "debian">>;

/** A kernel source: pinned (fetched into the store once) or a tree used in place. */
export type KernelSource =
  | { readonly kind: "pinned"; readonly input: string; readonly locked: LockedInput; readonly location: string }
  | {
      readonly kind: "tree";
      readonly input: string;
      readonly path: string;
      readonly fingerprint: string;
      /** Set when keel.override.json replaces a pinned input by this tree (`keel kernel checkout`). */
      readonly override?: { readonly file: string; readonly from?: string };
    };

interface StepSpec<Slice, Role extends string, Optional extends string, Local> {
  readonly id: string;
  readonly name: string;
  readonly slice: Slice;
  readonly inputs: Readonly<Record<Role, Step>> & Readonly<Partial<Record<Optional, Step>>>;
  readonly local: Local;
}

/** A step of a kind: its hash covers the kind and its version, the slice and the input steps' hashes by role. */
function makeStep<Slice, Role extends string, Optional extends string, Local>(
  kind: StepKind<Slice, Role, Optional, Local>,
  spec: StepSpec<Slice, Role, Optional, Local>,
): Step<Slice, Role, Optional, Local> {
  const inputHashes = Object.fromEntries(Object.entries<Step>(spec.inputs).map(([role, step]) => [role, step.hash]));
  const hash = createHash("sha256")
    .update(canonicalJson({ kind: kind.kind, version: kind.version, slice: spec.slice, inputs: inputHashes }))
    .digest("hex")
    .slice(0, 32);
  return { ...spec, kind, hash };
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

/** Where the pinned .debs come from when the store lacks them: local to this host, never hashed. */
const debSource = (host: Pick<HostFacts, "mirror" | "debian">): DebSource => ({ mirror: host.mirror, date: host.debian.date });

/** Debian's kernel as keel.lock pins it. */
function debianKernel(system: string, host: KernelHostFacts): { slice: DebianKernelSlice; local: DebSource } {
  const pin = host.debian?.kernel;
  if (pin === undefined || host.mirror === undefined || host.debian === undefined) throw new Error(`planSystem: keel.lock pins no Debian kernel for ${system}`);
  return { slice: { package: pin.package, image: pin.image, packages: pin.packages }, local: debSource({ mirror: host.mirror, debian: host.debian }) };
}

/** The label a root file system image gets: the one the configuration finds it by, else "keel-root". */
function rootLabel(root: ResolvedSystem["fileSystems"][string] | null): string {
  return root?.label ?? /^\/dev\/disk\/by-label\/(.+)$/.exec(root?.device ?? "")?.[1] ?? "keel-root";
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

function kernelSteps(system: string, config: ResolvedSystem, host: KernelHostFacts): Step[] {
  const kernel = config.boot.kernel;
  if (kernel.source === null) return [makeStep(debianKernelStep, { id: "kernel", name: `kernel-${kernel.debianPackage}`, inputs: {}, ...debianKernel(system, host) })];
  const source = host.kernelSource;
  if (source === undefined || source.input !== kernel.source) throw new Error(`planSystem: no host facts for the kernel source input ${kernel.source}`);
  const fetched =
    source.kind === "pinned"
      ? makeStep(sourceStep, {
          id: "source",
          name: `source-${source.input}`,
          slice: pinnedIdentity(source.locked),
          inputs: {},
          local: { input: source.input, locked: source.locked, location: source.location },
        })
      : undefined;
  const baseIsFile = !isNamedBaseConfig(kernel.baseConfig);
  const debian = kernel.baseConfig === "debian" ? debianKernel(system, host) : undefined;
  const local: SourceKernelLocal = {
    // A tree has its own build directory, so that returning to the pinned source finds its build as it was.
    workspace: `kernel-${source.input}-${host.arch}-${system}${source.kind === "tree" ? `-tree-${createHash("sha256").update(source.path).digest("hex").slice(0, 8)}` : ""}`,
    ...(source.kind === "tree" ? { tree: source.path } : {}),
    ...(baseIsFile ? { baseConfigFile: kernel.baseConfig } : {}),
    fragments: kernel.configFragments,
    ...(debian ? { debian: debian.local } : {}),
  };
  const step = makeStep(sourceKernelStep, {
    id: "kernel",
    name: `kernel-${source.input}`,
    slice: {
      tree: source.kind === "tree" ? source.fingerprint : null,
      arch: host.arch,
      baseConfig: baseIsFile ? { file: host.files[kernel.baseConfig] ?? "missing" } : kernel.baseConfig,
      // Debian's own config comes from its prebuilt kernel package.
      debian: debian?.slice ?? null,
      fragments: kernel.configFragments.map((f) => host.files[f] ?? "missing"),
      settings: kernel.settings,
    },
    inputs: fetched ? { source: fetched } : {},
    local,
  });
  return fetched ? [fetched, step] : [step];
}

/** The root filesystem's slice: the pinned packages, the files under /etc, and what the setup script reads. */
function rootfsSlice(config: ResolvedSystem, host: HostFacts): RootfsSlice {
  const etc = Object.fromEntries(
    Object.entries(config.environment.etc).map(([name, file]) => [
      name,
      { ...file, sourceHash: file.source === null ? null : (host.files[file.source] ?? "missing") },
    ]),
  );
  return {
    distro: { suite: host.debian.suite, components: host.debian.components, arch: host.debian.arch, sources: config.distro.mirror ?? debianMirror },
    debs: host.debian.packages,
    etc,
    setup: {
      users: Object.fromEntries(Object.entries(config.users.users).map(([name, { openssh: _keys, ...user }]) => [name, user])),
      groups: config.users.groups,
      units: unitActions(config.systemd.services),
      timeZone: config.time.timeZone,
    },
  };
}

/**
 * The files under /etc in which `variant` differs from `base`, when nothing
 * else differs and no file of `base` is missing; undefined otherwise.
 */
function etcDifference(variant: RootfsSlice, base: RootfsSlice): Record<string, EtcFile> | undefined {
  if (canonicalJson({ ...variant, etc: null }) !== canonicalJson({ ...base, etc: null })) return undefined;
  if (Object.keys(base.etc).some((name) => !(name in variant.etc))) return undefined;
  return Object.fromEntries(Object.entries(variant.etc).filter(([name, file]) => canonicalJson(file) !== canonicalJson(base.etc[name])));
}

export interface PlanOptions {
  /**
   * The system `config` is a variant of (keel run's VM variant of it): when the
   * two root filesystems differ only in files under /etc, the variant shares
   * the system's rootfs step and its image adds those files.
   */
  readonly base?: ResolvedSystem;
}

/**
 * Every step of a system. The root filesystem reads no kernel: the kernel's
 * modules join it in the image, so a kernel change leaves mmdebstrap's step
 * cached. The image (what `keel run` boots), the disk (a bootable disk of
 * the machine layout) and the ISO (with its own initrd) are steps of every
 * plan; `keel build` asks for none of them.
 */
export function planSystem(system: string, config: ResolvedSystem, host: HostFacts, options: PlanOptions = {}): BuildPlan {
  const kernelPlan = kernelSteps(system, config, host);
  const kernel = kernelPlan[kernelPlan.length - 1] as Step;
  const own = rootfsSlice(config, host);
  const base = options.base === undefined ? undefined : rootfsSlice(options.base, host);
  const difference = base === undefined ? undefined : etcDifference(own, base);
  const rootfs = makeStep(rootfsStep, {
    id: "rootfs",
    name: `rootfs-${config.networking.hostName}`,
    slice: base !== undefined && difference !== undefined ? base : own,
    inputs: {},
    local: debSource(host),
  });
  const root = config.fileSystems["/"] ?? null;
  // Stage 1 is keel's on every machine: it finds the root, and in a VM lays the VM's disk over the image.
  const initrdSlice = {
    // A set: the VM variant naming the modules the system already names (virtio_blk) keeps the system's initrd.
    availableKernelModules: [...new Set(config.boot.initrd.availableKernelModules)].sort(),
    kernelModules: config.boot.initrd.kernelModules,
    root,
    // The layout's file systems (an ext4 root holding the generations, the overlay over one) and the one fileSystems."/" names:
    // a hardware module lists the storage path to the root, as NixOS's does, not the file system's own module.
    optionalModules: [...new Set(["overlay", "ext4", ...(root !== null && root.fsType !== "auto" ? [root.fsType] : [])])],
    busybox: host.busybox,
  };
  const initrd = makeStep(initrdStep, { id: "initrd", name: "initrd", slice: initrdSlice, inputs: { kernel }, local: undefined });
  // An ISO's stage 1 also finds a CD or a USB stick and reads the generation from it.
  const isoInitrd = makeStep(initrdStep, {
    id: "initrd-iso",
    name: "initrd-iso",
    slice: { ...initrdSlice, optionalModules: [...initrdSlice.optionalModules, ...isoInitrdModules] },
    inputs: { kernel },
    local: undefined,
  });
  const top = makeStep(systemStep, {
    id: "system",
    name: `system-${system}`,
    slice: { kernelParams: config.boot.kernelParams },
    inputs: { kernel, initrd, rootfs },
    local: undefined,
  });
  // The image is the root file system, the kernel's modules and a variant's own /etc files: its size is the VM's disk size, its label the one stage 1 finds.
  const image = makeStep(imageStep, {
    id: "image",
    name: `image-${config.networking.hostName}`,
    slice: { diskSize: config.virtualisation.diskSize, label: rootLabel(root), etc: difference ?? {} },
    inputs: { rootfs, kernel },
    local: undefined,
  });
  // The bootable disk of the machine layout, the system as its generation 1 (keel image, keel run --firmware uefi, keel install).
  const identity = diskIdentity(config, top.hash);
  const generation = { number: 1, system, kernelParams: config.boot.kernelParams };
  const disk = makeStep(diskStep, {
    id: "disk",
    name: `disk-${config.networking.hostName}`,
    slice: { identity, generation, timeout: config.boot.loader.timeout, etc: difference ?? {} },
    inputs: { rootfs, kernel, initrd },
    local: undefined,
  });
  // The same generation as a hybrid ISO (keel image --format iso): state in memory.
  const iso = makeStep(isoStep, {
    id: "iso",
    name: `iso-${config.networking.hostName}`,
    slice: { label: isoLabel(top.hash), volumeId: identity.esp.volumeId, generation, timeout: config.boot.loader.timeout, etc: difference ?? {} },
    inputs: { rootfs, kernel, initrd: isoInitrd },
    local: undefined,
  });
  return { system, steps: [...kernelPlan, initrd, rootfs, top, image, disk, isoInitrd, iso], top };
}

/** The kernel's steps alone, for a system that is only a kernel to boot (`keel kernel run --source DIR`); its top is the kernel. */
export function planKernel(system: string, config: ResolvedSystem, host: KernelHostFacts): BuildPlan {
  const steps = kernelSteps(system, config, host);
  return { system, steps, top: steps[steps.length - 1] as Step };
}

/** The part of a plan that builds the steps asked for: they and what they read, in the plan's order; the first is its top. */
export function subPlan(plan: BuildPlan, top: Step, ...more: Step[]): BuildPlan {
  const needed = new Set<Step>();
  const visit = (step: Step): void => {
    if (needed.has(step)) return;
    needed.add(step);
    for (const input of Object.values<Step>(step.inputs)) visit(input);
  };
  for (const step of [top, ...more]) visit(step);
  return { system: plan.system, steps: plan.steps.filter((s) => needed.has(s)), top };
}
