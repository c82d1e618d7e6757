// The pure parts of the kernel developer's loop: the Kconfig database behind
// `keel kernel explain`, the config chain behind `config --diff`, the compile
// database for clangd, the run's QEMU command line and console, the override file.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { readOverrides, writeOverride } from "../../src/inputs/override.ts";
import { clangCommand, clangDatabase, clangdConfig } from "../../src/kernel/compdb.ts";
import { chainChanges, provenance, type ConfigChain } from "../../src/kernel/config-chain.ts";
import { readKconfig } from "../../src/kernel/kconfig-db.ts";
import { ConsoleReader, kernelRunArgv, runInit, runMarkers, treeRunInput, treeRunModule, treeRunSystem } from "../../src/kernel/run.ts";
import { evaluateSystem, type Project } from "../../src/config/project.ts";
import { kernelFacts } from "../../src/host/facts.ts";
import { planKernel } from "../../src/plan/plan.ts";
import type { SourceKernelLocal } from "../../src/steps/kbuild.ts";

function tree(files: Record<string, string>): string {
  const root = mkdtempSync(path.join(os.tmpdir(), "keel-kconfig-"));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, name)), { recursive: true });
    writeFileSync(path.join(root, name), text);
  }
  return root;
}

describe("the Kconfig database", () => {
  const root = tree({
    Kconfig: 'mainmenu "Linux"\nsource "drivers/Kconfig"\nsource "arch/$(SRCARCH)/Kconfig"\n',
    "arch/x86/Kconfig": "config X86\n\tdef_bool y\n\tselect HAVE_PCI\n",
    "arch/arm64/Kconfig": "config ARM64\n\tdef_bool y\n",
    "drivers/Kconfig": [
      'menuconfig BLK_DEV\n\tbool "Block devices"\n\tdefault y\n',
      "if BLK_DEV",
      "",
      "config VIRTIO_BLK",
      '\ttristate "Virtio block driver"',
      "\tdepends on VIRTIO",
      "\tselect SG_POOL",
      "\timply BLK_MQ if PCI",
      "\thelp",
      "\t  This is the virtual block driver for virtio.",
      "",
      "\t  Indented:",
      "\t    kept",
      "",
      "endif",
      'menu "Other"',
      "\tdepends on NET",
      "config HAVE_PCI",
      "\tbool",
      "endmenu",
      "",
    ].join("\n"),
  });
  const db = readKconfig(root, { SRCARCH: "x86" });

  it("reads an entry with its prompt, type, help and the if block around it", () => {
    const [entry] = db.entries.get("VIRTIO_BLK") ?? [];
    assert.equal(entry?.type, "tristate");
    assert.equal(entry?.prompt, "Virtio block driver");
    assert.equal(entry?.file, "drivers/Kconfig");
    assert.equal(entry?.line, 7);
    assert.deepEqual(entry?.depends, ["BLK_DEV", "VIRTIO"]);
    assert.equal(entry?.help, "This is the virtual block driver for virtio.\n\nIndented:\n  kept");
    assert.deepEqual(entry?.implies, [{ value: "BLK_MQ", condition: "PCI" }]);
  });

  it("follows source with the architecture's variables, indexes selects in reverse, and gives a menu's depends to its entries", () => {
    assert.equal(db.entries.has("X86"), true);
    assert.equal(db.entries.has("ARM64"), false);
    assert.deepEqual(db.selectedBy.get("HAVE_PCI"), [{ by: "X86", condition: null }]);
    assert.deepEqual(db.selectedBy.get("SG_POOL"), [{ by: "VIRTIO_BLK", condition: null }]);
    assert.deepEqual(db.impliedBy.get("BLK_MQ"), [{ by: "VIRTIO_BLK", condition: "PCI" }]);
    assert.deepEqual(db.entries.get("HAVE_PCI")?.[0]?.depends, ["NET"]);
    assert.deepEqual(db.entries.get("X86")?.[0]?.defaults, [{ value: "y", condition: null }]);
  });
});

describe("the config chain", () => {
  const chain: ConfigChain = {
    base: { label: "tinyconfig", config: "# CONFIG_VIRTIO_BLK is not set\nCONFIG_PRINTK=y\n" },
    fragments: [{ name: "/p/kvm.config", text: "CONFIG_VIRTIO_BLK=m\n" }],
    settings: "CONFIG_VIRTIO_BLK=y\nCONFIG_SMP=y\n",
    merged: "CONFIG_VIRTIO_BLK=y\nCONFIG_PRINTK=y\nCONFIG_SMP=y\n",
    final: "CONFIG_VIRTIO_BLK=y\nCONFIG_PRINTK=y\nCONFIG_SMP=y\nCONFIG_SG_POOL=y\n",
  };

  it("gives each change to the last stage that names the option, the rest to olddefconfig", () => {
    assert.deepEqual(chainChanges(chain), [
      { stage: "/p/kvm.config", changes: [] },
      { stage: "boot.kernel.settings", changes: [{ name: "SMP", from: "n", to: "y" }, { name: "VIRTIO_BLK", from: "n", to: "y" }] },
      { stage: "olddefconfig", changes: [{ name: "SG_POOL", from: "n", to: "y" }] },
    ]);
  });

  it("says which stage decided a value, and what every stage asked", () => {
    assert.deepEqual(provenance(chain, "VIRTIO_BLK"), {
      value: "y",
      stage: "boot.kernel.settings",
      base: "n",
      requested: [{ stage: "/p/kvm.config", value: "m" }, { stage: "boot.kernel.settings", value: "y" }],
    });
    assert.equal(provenance(chain, "PRINTK").stage, "tinyconfig");
    assert.equal(provenance(chain, "SG_POOL").stage, "olddefconfig");
  });
});

describe("the compile database for clang tools", () => {
  it("drops the ccache wrapper and GCC-only flags, keeping the rest word for word", () => {
    const command = "ccache gcc -Wp,-MMD,kernel/.fork.o.d -nostdinc -mno-fp-ret-in-387 -mskip-rax-setup -fconserve-stack -DKBUILD_MODNAME='\"fork\"' -c -o kernel/fork.o /src/kernel/fork.c";
    assert.equal(clangCommand(command), "gcc -Wp,-MMD,kernel/.fork.o.d -nostdinc -DKBUILD_MODNAME='\"fork\"' -c -o kernel/fork.o /src/kernel/fork.c");
  });

  it("names the source itself where Kbuild saw it through the build directory's link", () => {
    const [entry] = clangDatabase(
      [
        {
          directory: "/b/k",
          file: "/b/k/keel-src/kernel/fork.c",
          command: "ccache gcc -I/b/k/keel-src/include -I./include -include /b/k/keel-src/include/linux/kconfig.h -c -o kernel/fork.o /b/k/keel-src/kernel/fork.c",
        },
      ],
      { link: "keel-src", src: "/home/me/linux" },
    );
    assert.deepEqual(entry, {
      directory: "/b/k",
      file: "/home/me/linux/kernel/fork.c",
      command: "gcc -I/home/me/linux/include -I./include -include /home/me/linux/include/linux/kconfig.h -c -o kernel/fork.o /home/me/linux/kernel/fork.c",
    });
  });

  it("writes a .clangd naming the build directory", () => {
    assert.match(clangdConfig("/s/builds/k"), /CompilationDatabase: "\/s\/builds\/k"/);
  });
});

describe("keel kernel run", () => {
  it("boots with the console on stdio, no reboot on panic, quiet unless interactive", () => {
    const argv = kernelRunArgv({ kernel: "/k/vmlinuz", initrd: "/t/initrd.img", accel: "tcg", memory: 256, interactive: false, append: ["foo=1"] });
    assert.deepEqual(argv.slice(0, 3), ["qemu-system-x86_64", "-machine", "pc,accel=tcg"]);
    assert.equal(argv[argv.indexOf("-append") + 1], "console=ttyS0 panic=-1 rdinit=/init quiet foo=1");
    assert.ok(argv.includes("-no-reboot"));
    assert.deepEqual(argv.slice(-2), ["-serial", "stdio"]);
    const shell = kernelRunArgv({ kernel: "/k", initrd: "/i", accel: "kvm", memory: 256, interactive: true, append: [] });
    assert.ok(shell.includes("host") && !shell[shell.indexOf("-append") + 1]?.includes("quiet"));
    assert.ok(!argv.includes("-bios"), "QEMU's own firmware unless told");
    const qboot = kernelRunArgv({ kernel: "/k", initrd: "/i", accel: "tcg", memory: 256, interactive: false, append: [], bios: "/q/qboot.rom" });
    assert.equal(qboot[qboot.indexOf("-bios") + 1], "/q/qboot.rom");
  });

  it("passes on the command's output only, reads its exit code, and never takes its output for the kernel's trouble", () => {
    const m = runMarkers("abc");
    const seen: string[] = [];
    const reader = new ConsoleReader("abc", (line) => seen.push(line));
    reader.feed(`[    0.5] booting\r\n${m.begin}\r\nhello\r\nWARNING: mine`);
    reader.feed(`\r\n${m.end} 3\r\n`);
    assert.deepEqual(seen, ["hello", "WARNING: mine"]);
    assert.deepEqual(reader.finish(), { exitCode: 3, trouble: undefined });
  });

  it("reports a panic at boot with the trace after it", () => {
    const reader = new ConsoleReader("abc", () => undefined);
    reader.feed("Kernel panic - not syncing: VFS: Unable to mount root fs\nCPU: 0 PID: 1\nCall Trace:\n");
    const outcome = reader.finish();
    assert.equal(outcome.exitCode, undefined);
    assert.match(outcome.trouble ?? "", /^Kernel panic - not syncing: VFS[\s\S]*Call Trace:/);
  });

  it("has an init that prints the kernel log when the kernel complained", () => {
    assert.match(runInit(), /dmesg \| grep -qE '.*Oops/);
  });
});

describe("keel.override.json", () => {
  it("is written, read and removed with its last input", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "keel-override-"));
    const project = path.join(dir, "keel.config.ts");
    assert.deepEqual(readOverrides(project), {});
    await writeOverride(project, "linux", { path: "./linux", from: "linux-source-6.1 6.1.192-2" });
    assert.deepEqual(readOverrides(project), { linux: { path: "./linux", from: "linux-source-6.1 6.1.192-2" } });
    await writeOverride(project, "linux", undefined);
    assert.throws(() => readFileSync(path.join(dir, "keel.override.json")), /ENOENT/);
  });

  it("refuses a malformed file, naming it and the fix", () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "keel-override-"));
    writeFileSync(path.join(dir, "keel.override.json"), '{"inputs":{"linux":{"dir":"x"}}}');
    assert.throws(() => readOverrides(path.join(dir, "keel.config.ts")), /keel\.override\.json' is not a valid keel\.override\.json:[\s\S]*Fix: write/);
  });
});

describe("keel kernel run --source: a tree as the kernel", () => {
  const kernelTree = () => tree({ Makefile: "VERSION = 6\n", Kconfig: 'mainmenu "Linux"\n' });
  const treeProject = (dir: string): Project => ({
    file: path.join(dir, "keel.config.ts"),
    inputs: { [treeRunInput]: { type: "path", path: dir } },
    systems: new Map([[treeRunSystem, [treeRunModule]]]),
  });

  it("without a project: keel's small system of the tree, its kernel step alone, in a build directory of that tree's own", () => {
    const dir = kernelTree();
    const project = treeProject(dir);
    const { config } = evaluateSystem(project, treeRunSystem);
    const plan = planKernel(treeRunSystem, config, kernelFacts(config, project, dir));
    assert.deepEqual(plan.steps.map((s) => s.id), ["kernel"]);
    const local = plan.top.local as SourceKernelLocal;
    assert.equal(local.tree, dir);
    assert.match(local.workspace, new RegExp(`^kernel-linux-\\w+-${treeRunSystem}-tree-[0-9a-f]{8}$`));
    const slice = plan.top.slice as { baseConfig: string; settings: Record<string, string> };
    assert.equal(slice.baseConfig, "tinyconfig");
    assert.equal(slice.settings.SERIAL_8250_CONSOLE, "y");
    assert.equal(slice.settings.ACPI, "y");
  });

  it("with a system: the tree replaces the input for this command, over keel.override.json", () => {
    const dir = kernelTree();
    const projectDir = mkdtempSync(path.join(os.tmpdir(), "keel-project-"));
    writeFileSync(path.join(projectDir, "keel.override.json"), JSON.stringify({ inputs: { linux: { path: "./elsewhere" } } }));
    const project: Project = {
      file: path.join(projectDir, "keel.config.ts"),
      inputs: { linux: { type: "tarball", url: "./linux.tar.xz" } },
      systems: new Map([["qemu", [treeRunModule]]]),
    };
    const { config } = evaluateSystem(project, "qemu");
    const source = kernelFacts(config, project, dir).kernelSource;
    assert.equal(source?.kind, "tree");
    assert.equal(source?.kind === "tree" ? source.path : undefined, dir);
    assert.equal(source?.kind === "tree" ? source.override : "pinned", undefined);
  });

  it("refuses a tree configured in place, naming it and mrproper", () => {
    const dir = kernelTree();
    writeFileSync(path.join(dir, ".config"), "CONFIG_64BIT=y\n");
    const project = treeProject(dir);
    const { config } = evaluateSystem(project, treeRunSystem);
    assert.throws(() => kernelFacts(config, project, dir), (error: Error) => error.message.includes(`the tree ${dir}, which was configured or built in place (it has .config)`) && /Fix: `make -C .* mrproper`/.test(error.message));
  });
});
