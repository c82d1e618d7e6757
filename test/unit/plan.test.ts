// Planning: step hashes change exactly when what a step reads changes.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { defineModule, mkForce } from "../../src/index.ts";
import { evaluateSystem, type Project, type ResolvedSystem } from "../../src/config/project.ts";
import { hostFacts } from "../../src/host/facts.ts";
import type { PinnedDeb } from "../../src/inputs/lock.ts";
import { diskIdentity } from "../../src/image/layout.ts";
import { canonicalJson, planSystem, subPlan, type BuildPlan, type HostFacts } from "../../src/plan/plan.ts";
import type { DiskSlice } from "../../src/steps/disk.ts";
import { testHost } from "./host-facts.ts";

const host = testHost;

const base = defineModule({
  packages: ["htop"],
  boot: { kernelParams: ["console=ttyS0"], initrd: { availableKernelModules: ["virtio_blk"] } },
  fileSystems: { "/": { device: "/dev/vda", fsType: "ext4" } },
});

function project(modules: object[], file = path.resolve("keel.config.ts")): Project {
  return { file, inputs: { linux: { type: "debian-source", package: "linux-source-6.1" } }, systems: new Map([["test", modules]]) };
}

function configOf(...modules: object[]): ResolvedSystem {
  return evaluateSystem(project(modules), "test").config;
}

function hashes(plan: BuildPlan): Record<string, string> {
  return Object.fromEntries(plan.steps.map((s) => [s.id, s.hash]));
}

const plan = (...modules: object[]) => hashes(planSystem("test", configOf(base, ...modules), host));

describe("step hashes", () => {
  const before = plan();

  it("a plan has kernel, initrd, rootfs, system, image, disk, the ISO's initrd and the ISO, dependencies first", () => {
    const steps = planSystem("test", configOf(base), host).steps;
    assert.deepEqual(steps.map((s) => s.id), ["kernel", "initrd", "rootfs", "system", "image", "disk", "initrd-iso", "iso"]);
    const optional = (id: string) => (steps.find((s) => s.id === id)?.slice as { optionalModules: string[] }).optionalModules;
    assert.deepEqual(optional("initrd"), ["overlay", "ext4"], "the layout's root file system, which a hardware module does not list");
    assert.deepEqual(optional("initrd-iso").slice(0, 5), ["overlay", "ext4", "isofs", "squashfs", "loop"], "the ISO's stage 1 also reads a CD's file system and the generation's squashfs");
    assert.ok(optional("initrd-iso").includes("usb_storage") && optional("initrd-iso").includes("sr_mod"), "and finds a USB stick and a CD");
  });

  it("planning twice gives the same hashes", () => assert.deepEqual(plan(), before));

  it("one more package (as keel.lock then pins it) changes the rootfs, the system, the image and the disk, not the kernel or initrd", () => {
    const vim = { version: "2:9.0.1378-2", sha256: "7".repeat(64), size: 1000, filename: "pool/main/v/vim/vim_9.0.1378-2_amd64.deb" };
    const pinned = { ...host, debian: { ...host.debian, packages: { ...host.debian.packages, vim } } };
    const after = hashes(planSystem("test", configOf(base, defineModule({ packages: ["vim"] })), pinned));
    assert.equal(after.kernel, before.kernel);
    assert.equal(after.initrd, before.initrd);
    for (const id of ["rootfs", "system", "image", "disk", "iso"]) assert.notEqual(after[id], before[id], id);
  });

  it("a kernel parameter changes only the system, the disk and the ISO, whose boot entries hold it", () => {
    const after = plan(defineModule({ boot: { kernelParams: ["quiet"] } }));
    assert.deepEqual({ ...after, system: "", disk: "", iso: "" }, { ...before, system: "", disk: "", iso: "" });
    assert.notEqual(after.system, before.system);
    assert.notEqual(after.disk, before.disk);
    assert.notEqual(after.iso, before.iso);
  });

  it("an initrd module changes the initrd and the system only", () => {
    const after = plan(defineModule({ boot: { initrd: { availableKernelModules: ["ext4"] } } }));
    assert.equal(after.kernel, before.kernel);
    assert.equal(after.rootfs, before.rootfs);
    assert.notEqual(after.initrd, before.initrd);
  });

  it("the mirror .debs are fetched from is part of no hash: the pins are", () => {
    assert.deepEqual(hashes(planSystem("test", configOf(base), { ...host, mirror: "http://127.0.0.1:9/debian" })), before);
    const moved = { ...host.debian, packages: { ...host.debian.packages, htop: { ...(host.debian.packages.htop as PinnedDeb), version: "3.2.2-3", sha256: "9".repeat(64) } } };
    const after = hashes(planSystem("test", configOf(base), { ...host, debian: moved }));
    assert.equal(after.kernel, before.kernel);
    for (const id of ["rootfs", "system", "image", "disk", "iso"]) assert.notEqual(after[id], before[id], id);
  });

  it("another pinned Debian kernel changes the kernel and what boots it, not the rootfs", () => {
    const kernel = host.debian.kernel as NonNullable<HostFacts["debian"]["kernel"]>;
    const moved = { ...host.debian, kernel: { ...kernel, packages: { ...kernel.packages, [kernel.image]: { ...(kernel.packages[kernel.image] as PinnedDeb), sha256: "8".repeat(64) } } } };
    const after = hashes(planSystem("test", configOf(base), { ...host, debian: moved }));
    assert.equal(after.rootfs, before.rootfs);
    for (const id of ["kernel", "initrd", "system", "image", "disk", "initrd-iso", "iso"]) assert.notEqual(after[id], before[id], id);
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

  it("the root filesystem reads no other step; the image joins it with the kernel, the disk with the kernel and the initrd", () => {
    const steps = planSystem("test", configOf(base), host).steps;
    assert.deepEqual(
      steps.map((s) => [s.id, Object.keys(s.inputs)]),
      [["kernel", []], ["initrd", ["kernel"]], ["rootfs", []], ["system", ["kernel", "initrd", "rootfs"]], ["image", ["rootfs", "kernel"]], ["disk", ["rootfs", "kernel", "initrd"]], ["initrd-iso", ["kernel"]], ["iso", ["rootfs", "kernel", "initrd"]]],
    );
  });

  it("hashes are 32 hex digits, store names carry the host name", () => {
    const steps = planSystem("test", configOf(base), host).steps;
    for (const step of steps) assert.match(step.hash, /^[0-9a-f]{32}$/);
    assert.deepEqual(steps.map((s) => s.name), ["kernel-linux-image-amd64", "initrd", "rootfs-test", "system-test", "image-test", "disk-test", "initrd-iso", "iso-test"]);
  });
});

describe("a kernel from source", () => {
  const locked = {
    type: "debian-source",
    package: "linux-source-6.1",
    version: "6.1.192-2",
    url: "http://deb.debian.org/debian-security/pool/updates/main/l/linux/linux-source-6.1_6.1.192-2_all.deb",
    sha256: "a".repeat(64),
  } as const;
  const pinnedHost: HostFacts = { ...host, kernelSource: { kind: "pinned", input: "linux", locked, location: locked.url } };
  const small = defineModule({ boot: { kernel: { source: "linux", baseConfig: "tinyconfig", settings: { VIRTIO_BLK: "y" } } } });
  const planOf = (hostFacts: HostFacts, ...modules: object[]) => planSystem("test", configOf(base, small, ...modules), hostFacts);
  const sourceHashes = (hostFacts: HostFacts, ...modules: object[]) => hashes(planOf(hostFacts, ...modules));
  const before = sourceHashes(pinnedHost);

  it("is fetched by a source step before the kernel step, which builds in the system's own directory", () => {
    const steps = planOf(pinnedHost).steps;
    assert.deepEqual(steps.map((s) => s.id), ["source", "kernel", "initrd", "rootfs", "system", "image", "disk", "initrd-iso", "iso"]);
    assert.deepEqual(Object.keys(steps[1]?.inputs ?? {}), ["source"]);
    assert.deepEqual(steps[1]?.local, { workspace: "kernel-linux-amd64-test", fragments: [] });
  });

  it("a setting changes the kernel, initrd, image, disk and system, never the source or the rootfs", () => {
    const after = sourceHashes(pinnedHost, defineModule({ boot: { kernel: { settings: { VIRTIO_NET: "y" } } } }));
    assert.equal(after.source, before.source);
    assert.equal(after.rootfs, before.rootfs);
    for (const id of ["kernel", "initrd", "system", "image", "disk", "initrd-iso", "iso"]) assert.notEqual(after[id], before[id], id);
  });

  it("another pinned version changes the source and the kernel", () => {
    const after = sourceHashes({ ...pinnedHost, kernelSource: { kind: "pinned", input: "linux", locked: { ...locked, version: "6.1.193-1" }, location: locked.url } });
    assert.notEqual(after.source, before.source);
    assert.notEqual(after.kernel, before.kernel);
  });

  it("where the pinned bytes come from is not part of any hash", () => {
    const mirrored = { ...pinnedHost, kernelSource: { kind: "pinned", input: "linux", locked: { ...locked, url: "http://mirror.example/x.deb" }, location: "http://mirror.example/x.deb" } } as const;
    assert.deepEqual(sourceHashes(mirrored), before);
  });

  it("a tree used in place has no source step; its fingerprint is in the kernel's hash", () => {
    const tree = (fingerprint: string): HostFacts => ({ ...host, kernelSource: { kind: "tree", input: "linux", path: "/src/linux", fingerprint } });
    const one = planOf(tree("1".repeat(64)));
    assert.deepEqual(one.steps.map((s) => s.id), ["kernel", "initrd", "rootfs", "system", "image", "disk", "initrd-iso", "iso"]);
    assert.equal((one.steps[0]?.local as { tree: string }).tree, "/src/linux");
    assert.notEqual(hashes(planOf(tree("2".repeat(64)))).kernel, hashes(one).kernel);
  });

  it("a config fragment's content is part of the kernel's hash", () => {
    const module = defineModule({ boot: { kernel: { configFragments: ["/srv/guest.config"] } } });
    const one = sourceHashes({ ...pinnedHost, files: { "/srv/guest.config": "1".repeat(64) } }, module);
    const two = sourceHashes({ ...pinnedHost, files: { "/srv/guest.config": "2".repeat(64) } }, module);
    assert.notEqual(one.kernel, two.kernel);
    assert.equal(one.source, two.source);
  });

  it("an input keel.lock does not pin is an error naming it and the command", () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "keel-plan-"));
    const file = path.join(dir, "keel.config.ts");
    assert.throws(() => hostFacts("test", configOf(base, small), project([base, small], file)), {
      message:
        `The input \`linux' is not pinned: \`${path.join(dir, "keel.lock")}' does not pin it yet.\n` +
        "Fix: run `keel lock` (pins what is missing) or `keel update linux` (pins it anew), and commit keel.lock.",
    });
    rmSync(dir, { recursive: true });
  });
});

describe("what planning refuses", () => {
  it("an /etc source file that cannot be read", () =>
    assert.throws(() => hostFacts("test", configOf(base, defineModule({ environment: { etc: { motd: { source: "/nonexistent/motd" } } } })), project([])), {
      message:
        'environment.etc."motd".source names /nonexistent/motd, which is not a file keel can read.\n' +
        "Fix: correct the path (a relative one is taken from the module that sets it).",
    }));
});

describe("the root device", () => {
  it("must be one the initrd can find without udev", () =>
    assert.throws(() => configOf(base, defineModule({ fileSystems: { "/": { device: mkForce("/dev/disk/by-id/virtio-root") } } })), {
      message:
        "The system `test' fails an assertion:\n" +
        '- fileSystems."/".device is "/dev/disk/by-id/virtio-root", which keel\'s initrd cannot find (it has no udev). Use a device node (/dev/vda2), /dev/disk/by-uuid/…, /dev/disk/by-label/… or `label\'. ' +
        `(\`fileSystems."/".device' is set in \`${fileURLToPath(import.meta.url)}')`,
    }));
  it("by UUID is fine", () => assert.doesNotThrow(() => configOf(base, defineModule({ fileSystems: { "/": { device: mkForce("/dev/disk/by-uuid/5c1e") } } }))));
});

describe("one plan, whatever command asks", () => {
  const whole = planSystem("test", configOf(base), host);
  it("every system has keel's initrd, whether or not its root needs modules", () => {
    const config = configOf(base, defineModule({ boot: { initrd: { availableKernelModules: mkForce([]) } } }));
    assert.deepEqual(planSystem("test", config, host).steps.map((s) => s.id), ["kernel", "initrd", "rootfs", "system", "image", "disk", "initrd-iso", "iso"]);
  });
  it("keel build asks for the system, keel run also for the image: the same steps, the same hashes", () => {
    const image = whole.steps.find((s) => s.id === "image");
    assert.ok(image);
    const build = subPlan(whole, whole.top);
    const run = subPlan(whole, whole.top, image);
    assert.deepEqual(build.steps.map((s) => s.id), ["kernel", "initrd", "rootfs", "system"]);
    assert.deepEqual(run.steps.map((s) => s.id), ["kernel", "initrd", "rootfs", "system", "image"]);
    for (const step of build.steps) assert.equal(run.steps.find((s) => s.id === step.id)?.hash, step.hash);
  });
  it("keel image asks for the disk: the kernel, initrd and rootfs keel build made, and no image", () => {
    const disk = whole.steps.find((s) => s.id === "disk");
    assert.ok(disk);
    const image = subPlan(whole, disk);
    assert.deepEqual(image.steps.map((s) => s.id), ["kernel", "initrd", "rootfs", "disk"]);
    for (const step of image.steps) assert.equal(whole.steps.find((s) => s.id === step.id)?.hash, step.hash);
  });
  it("the disk holds the system as generation 1, under the identity its file systems name, with the boot menu's timeout", () => {
    const config = configOf(base, defineModule({ fileSystems: { "/": mkForce({ device: "/dev/disk/by-uuid/5c1e0f0a-1b2c-4d3e-8f40-5a6b7c8d9e0f", fsType: "ext4" }) } }));
    const plan = planSystem("test", config, host);
    const slice = plan.steps.find((s) => s.id === "disk")?.slice as DiskSlice;
    assert.deepEqual(slice.generation, { number: 1, system: "test", kernelParams: ["console=ttyS0"] });
    assert.equal(slice.identity.root.uuid, "5c1e0f0a-1b2c-4d3e-8f40-5a6b7c8d9e0f");
    assert.deepEqual(slice.identity, diskIdentity(config, plan.top.hash), "derived from the system: the same system, the same disk");
    assert.equal(slice.timeout, config.boot.loader.timeout);
    assert.deepEqual(slice.etc, {});
  });
});

describe("the VM variant keel run boots", () => {
  const withSsh = defineModule({ services: { openssh: { enable: true } } });
  const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGUrsd0as9j3gZ3BAKSC/JHSu868kaeieGg5nlhonf+I keel@project";
  const evaluate = (vm: boolean) => evaluateSystem(project([base, withSsh]), "test", vm ? { vm: { sshKey: key } } : {}).config;
  const plain = planSystem("test", evaluate(false), host);
  const vm = planSystem("test", evaluate(true), host, { base: evaluate(false) });
  const step = (plan: BuildPlan, id: string) => plan.steps.find((s) => s.id === id);

  it("shares the kernel and the root filesystem with the system: keel build then keel run runs mmdebstrap once", () => {
    assert.deepEqual(vm.steps.map((s) => s.id), plain.steps.map((s) => s.id));
    for (const id of ["kernel", "rootfs"]) assert.equal(step(vm, id)?.hash, step(plain, id)?.hash, id);
    // Stage 1 has the modules for the VM's disk; the image and the disk add root's key.
    for (const id of ["initrd", "system", "image", "disk"]) assert.notEqual(step(vm, id)?.hash, step(plain, id)?.hash, id);
  });

  it("a system whose initrd already has the VM's disk modules keeps its initrd and system step: keel build after keel run builds nothing", () => {
    const virtio = defineModule({ boot: { initrd: { availableKernelModules: ["virtio_blk", "virtio_pci", "ext4"] } } });
    const system = (vm: boolean) => evaluateSystem(project([base, withSsh, virtio]), "test", vm ? { vm: { sshKey: key } } : {}).config;
    const [own, variant] = [planSystem("test", system(false), host), planSystem("test", system(true), host, { base: system(false) })];
    for (const id of ["kernel", "rootfs", "initrd", "system"]) assert.equal(step(variant, id)?.hash, step(own, id)?.hash, id);
  });

  it("its image and its disk add exactly the files under /etc in which the VM variant differs: root's key and sshd's list of key files", () => {
    const etc = (plan: BuildPlan, id: string) => (step(plan, id)?.slice as { etc: Record<string, { text: string | null }> }).etc;
    assert.deepEqual(Object.keys(etc(vm, "image")).sort(), ["keel/vm-authorized-keys/root", "ssh/sshd_config.d/keel.conf", "systemd/system/ssh.service.d/keel-vm-ready.conf"]);
    assert.equal(etc(vm, "image")["keel/vm-authorized-keys/root"]?.text, `${key}\n`);
    assert.deepEqual(etc(vm, "disk"), etc(vm, "image"));
    assert.deepEqual(etc(plain, "image"), {});
  });

  it("a variant that differs in more than /etc files builds its own root filesystem", () => {
    const user = defineModule({ users: { users: { vmuser: { isNormalUser: true } } } });
    const other = planSystem("test", configOf(base, user), host, { base: configOf(base) });
    assert.notEqual(step(other, "rootfs")?.hash, hashes(planSystem("test", configOf(base), host)).rootfs);
    assert.deepEqual((step(other, "image")?.slice as { etc: object }).etc, {});
    const removed = planSystem("test", configOf(base), host, { base: configOf(base, defineModule({ environment: { etc: { motd: { text: "hi\n" } } } })) });
    assert.equal(step(removed, "rootfs")?.hash, hashes(planSystem("test", configOf(base), host)).rootfs, "a file the variant lacks: its own rootfs");
  });
});

describe("canonicalJson", () => {
  it("sorts keys at every depth", () => assert.equal(canonicalJson({ b: 1, a: { d: [2, { z: 1, y: 2 }], c: null } }), '{"a":{"c":null,"d":[2,{"y":2,"z":1}]},"b":1}'));
});
