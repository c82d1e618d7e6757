// Planning: step hashes change exactly when what a step reads changes.
import assert from "node:assert/strict";
import path from "node:path";
import { describe, it } from "node:test";
import { defineModule, mkForce } from "../../src/index.ts";
import { evaluateSystem, type ResolvedSystem } from "../../src/config/project.ts";
import { hostFacts } from "../../src/host/facts.ts";
import { canonicalJson, needsInitrd, planSystem, type BuildPlan, type HostFacts } from "../../src/plan/plan.ts";

const host: HostFacts = { mirror: "http://deb.debian.org/debian", arch: "amd64", busybox: "b".repeat(64), files: {} };

const base = defineModule({
  packages: ["htop"],
  boot: { kernelParams: ["console=ttyS0"], initrd: { availableKernelModules: ["virtio_blk"] } },
  fileSystems: { "/": { device: "/dev/vda", fsType: "ext4" } },
});

function configOf(...modules: object[]): ResolvedSystem {
  const project = {
    file: path.resolve("keel.config.ts"),
    inputs: { linux: { type: "debian-source", package: "linux-source-6.1" } } as const,
    systems: new Map([["test", modules]]),
  };
  return evaluateSystem(project, "test").config;
}

function hashes(plan: BuildPlan): Record<string, string> {
  return Object.fromEntries(plan.steps.map((s) => [s.kind, s.hash]));
}

const plan = (...modules: object[]) => hashes(planSystem("test", configOf(base, ...modules), host));

describe("step hashes", () => {
  const before = plan();

  it("a plan has kernel, initrd, rootfs and system, dependencies first", () => {
    assert.deepEqual(planSystem("test", configOf(base), host).steps.map((s) => s.kind), ["kernel", "initrd", "rootfs", "system"]);
  });

  it("planning twice gives the same hashes", () => assert.deepEqual(plan(), before));

  it("one more package changes the rootfs and the system, not the kernel or initrd", () => {
    const after = plan(defineModule({ packages: ["vim"] }));
    assert.equal(after.kernel, before.kernel);
    assert.equal(after.initrd, before.initrd);
    assert.notEqual(after.rootfs, before.rootfs);
    assert.notEqual(after.system, before.system);
  });

  it("a kernel parameter changes only the system", () => {
    const after = plan(defineModule({ boot: { kernelParams: ["quiet"] } }));
    assert.deepEqual({ ...after, system: "" }, { ...before, system: "" });
    assert.notEqual(after.system, before.system);
  });

  it("another Debian kernel package changes every step", () => {
    const after = plan(defineModule({ boot: { kernel: { debianPackage: "linux-image-cloud-amd64" } } }));
    for (const kind of ["kernel", "initrd", "rootfs", "system"]) assert.notEqual(after[kind], before[kind], kind);
  });

  it("an initrd module changes the initrd and the system only", () => {
    const after = plan(defineModule({ boot: { initrd: { availableKernelModules: ["ext4"] } } }));
    assert.equal(after.kernel, before.kernel);
    assert.equal(after.rootfs, before.rootfs);
    assert.notEqual(after.initrd, before.initrd);
  });

  it("the mirror is part of the kernel and rootfs hashes", () => {
    const other = hashes(planSystem("test", configOf(base), { ...host, mirror: "http://mirror.example/debian" }));
    assert.notEqual(other.kernel, before.kernel);
    assert.notEqual(other.rootfs, before.rootfs);
  });

  it("a different busybox changes the initrd", () => {
    const other = hashes(planSystem("test", configOf(base), { ...host, busybox: "c".repeat(64) }));
    assert.equal(other.rootfs, before.rootfs);
    assert.notEqual(other.initrd, before.initrd);
  });

  it("the content of an /etc source file is part of the rootfs hash", () => {
    const module = defineModule({ environment: { etc: { motd: { source: "/srv/motd" } } } });
    const one = hashes(planSystem("test", configOf(base, module), { ...host, files: { "/srv/motd": "1".repeat(64) } }));
    const two = hashes(planSystem("test", configOf(base, module), { ...host, files: { "/srv/motd": "2".repeat(64) } }));
    assert.notEqual(one.rootfs, two.rootfs);
  });

  it("the root filesystem may start while the kernel is built: it needs the modules only at its end", () => {
    const steps = planSystem("test", configOf(base), host).steps;
    assert.deepEqual(steps.map((s) => [s.kind, s.lateInputs]), [["kernel", []], ["initrd", []], ["rootfs", ["kernel"]], ["system", []]]);
  });

  it("hashes are 32 hex digits, store names carry the host name", () => {
    const steps = planSystem("test", configOf(base), host).steps;
    for (const step of steps) assert.match(step.hash, /^[0-9a-f]{32}$/);
    assert.deepEqual(steps.map((s) => s.name), ["kernel-linux-image-amd64", "initrd", "rootfs-test", "system-test"]);
  });
});

describe("what planning refuses", () => {
  it("a kernel from source, until keel builds them, rather than Debian's kernel in its place", () =>
    assert.throws(() => planSystem("test", configOf(base, defineModule({ boot: { kernel: { source: "linux" } } })), host), {
      message:
        'boot.kernel.source is "linux", but keel does not build kernels from source yet; it would silently build Debian\'s kernel instead.\n' +
        "Fix: set boot.kernel.source to null to boot Debian's kernel (boot.kernel.debianPackage) until kernels from source land.",
    }));
  it("an /etc source file that cannot be read", () =>
    assert.throws(() => hostFacts(configOf(base, defineModule({ environment: { etc: { motd: { source: "/nonexistent/motd" } } } }))), {
      message:
        'environment.etc."motd".source is /nonexistent/motd, which is not a file keel can read.\n' +
        "Fix: correct the path (a relative one is taken from the module that sets it) or use `text`.",
    }));
});

describe("the root device", () => {
  it("must be one the initrd can find without udev", () =>
    assert.throws(() => configOf(base, defineModule({ fileSystems: { "/": { device: mkForce("/dev/disk/by-id/virtio-root") } } })), {
      message:
        "The system `test' fails an assertion:\n" +
        '- fileSystems."/".device is "/dev/disk/by-id/virtio-root", which keel\'s initrd cannot find (it has no udev). Use a device node (/dev/vda2), /dev/disk/by-uuid/…, /dev/disk/by-label/… or `label\'.',
    }));
  it("by UUID is fine", () => assert.doesNotThrow(() => configOf(base, defineModule({ fileSystems: { "/": { device: mkForce("/dev/disk/by-uuid/5c1e") } } }))));
});

describe("the initrd is planned only when needed", () => {
  it("not without modules and with the root given by device", () => {
    const config = configOf(base, defineModule({ boot: { initrd: { availableKernelModules: mkForce([]) } } }));
    assert.equal(needsInitrd(config), false);
    assert.deepEqual(planSystem("test", config, host).steps.map((s) => s.kind), ["kernel", "rootfs", "system"]);
  });
  it("when the root is found by label", () => {
    const config = configOf(
      base,
      defineModule({ boot: { initrd: { availableKernelModules: mkForce([]) } }, fileSystems: { "/": { device: mkForce(null), label: "root" } } }),
    );
    assert.equal(needsInitrd(config), true);
  });
});

describe("canonicalJson", () => {
  it("sorts keys at every depth", () => assert.equal(canonicalJson({ b: 1, a: { d: [2, { z: 1, y: 2 }], c: null } }), '{"a":{"c":null,"d":[2,{"y":2,"z":1}]},"b":1}'));
});
