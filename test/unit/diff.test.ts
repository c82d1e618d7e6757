// keel diff's and keel deploy --on's pure parts: reading dpkg's status and a
// kernel config, sorting rsync's itemized dry run, choosing the systems --on
// names, and running deploys side by side with a limit.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { fileChanges, installedPackages, kernelConfigChanges, kernelOptions, packageChanges, unitName } from "../../src/deploy/diff.ts";
import { runLimited, selectSystems } from "../../src/deploy/fleet.ts";
import { liveLines } from "../../src/cli/output.ts";
import { UsageError } from "../../src/errors.ts";
import { itemizedChanges } from "../../src/host/ssh.ts";

const status = (...packages: [string, string, string?][]) =>
  packages.map(([name, version, state = "install ok installed"]) => `Package: ${name}\nStatus: ${state}\nArchitecture: amd64\nVersion: ${version}\nDescription: x\n more\n`).join("\n");

describe("packages, from dpkg's status", () => {
  it("only installed ones count", () => {
    const installed = installedPackages(status(["less", "590-2"], ["vim-tiny", "2:9.0.1378-2"], ["gone", "1", "deinstall ok config-files"]));
    assert.deepEqual([...installed], [["less", "590-2"], ["vim-tiny", "2:9.0.1378-2"]]);
    assert.deepEqual([...installedPackages("Package: libc6\nStatus: install ok installed\nArchitecture: i386\nVersion: 2.36-9\n")], [["libc6:i386", "2.36-9"]]);
  });
  it("added, removed and upgraded, with their versions, sorted", () => {
    const from = installedPackages(status(["less", "590-2"], ["vim-tiny", "2:9.0.1378-2"], ["openssl", "3.0.11-1"]));
    const to = installedPackages(status(["htop", "3.2.2-2"], ["less", "590-2"], ["openssl", "3.0.15-1"]));
    assert.deepEqual(packageChanges(from, to), {
      added: [{ name: "htop", version: "3.2.2-2" }],
      removed: [{ name: "vim-tiny", version: "2:9.0.1378-2" }],
      upgraded: [{ name: "openssl", from: "3.0.11-1", to: "3.0.15-1" }],
    });
  });
});

describe("a kernel config's changes", () => {
  it("reads `is not set' as n, and lists the options whose value differs", () => {
    const from = kernelOptions("CONFIG_KVM=y\n# CONFIG_NVME is not set\nCONFIG_LOCALVERSION=\"-a\"\nCONFIG_SAME=y\n");
    const to = kernelOptions("CONFIG_KVM=m\nCONFIG_NVME=m\nCONFIG_LOCALVERSION=\"-b\"\nCONFIG_SAME=y\n# CONFIG_NEW is not set\n");
    assert.deepEqual(kernelConfigChanges(from, to), [
      { option: "KVM", from: "y", to: "m" },
      { option: "LOCALVERSION", from: '"-a"', to: '"-b"' },
      { option: "NVME", from: "n", to: "m" },
    ]);
  });
});

describe("rsync's itemized dry run", () => {
  const output = [
    "sending incremental file list",
    ">f+++++++++ etc/htoprc",
    ">f..t...... etc/hostname",
    ">f.st...... usr/bin/htop",
    "cL+++++++++ etc/systemd/system/multi-user.target.wants/web.service -> /etc/systemd/system/web.service",
    "cLc........ etc/alternatives/editor -> /usr/bin/vim.tiny",
    ".d..t...... etc/",
    "cd+++++++++ usr/share/htop/",
    "*deleting   etc/old.conf",
    "*deleting   usr/share/old/",
    ".f...p..... etc/shadow",
    "hf+++++++++ usr/bin/linked => usr/bin/htop",
    "",
    "Number of files: 3",
  ].join("\n");
  it("is read line by line, a symlink's target dropped", () => {
    const changes = itemizedChanges(output);
    assert.equal(changes.length, 11);
    assert.deepEqual(changes[3], { flags: "cL+++++++++", path: "etc/systemd/system/multi-user.target.wants/web.service" });
    assert.deepEqual(changes[7], { flags: "*deleting", path: "etc/old.conf" });
  });
  it("sorts files into added, removed, changed (symlinks) and updated (to compare by content); directories and attributes are left out", () => {
    assert.deepEqual(fileChanges(itemizedChanges(output)), {
      added: ["etc/htoprc", "etc/systemd/system/multi-user.target.wants/web.service"],
      removed: ["etc/old.conf"],
      changed: ["etc/alternatives/editor"],
      updated: ["etc/hostname", "usr/bin/htop"],
    });
  });
  it("names systemd units by where they live", () => {
    assert.equal(unitName("etc/systemd/system/multi-user.target.wants/web.service"), "multi-user.target.wants/web.service");
    assert.equal(unitName("usr/lib/systemd/system/ssh.service"), "ssh.service");
    assert.equal(unitName("etc/ssh/sshd_config"), undefined);
  });
});

describe("the systems --on names", () => {
  const tags = new Map([
    ["aethelred", ["office", "x86"]],
    ["qemu", ["vm"]],
    ["beorn", ["office"]],
  ]);
  it("names and @tags, in the order given, each once", () => {
    assert.deepEqual(selectSystems("qemu,@office", tags), ["qemu", "aethelred", "beorn"]);
    assert.deepEqual(selectSystems("beorn, @office", tags), ["beorn", "aethelred"]);
  });
  it("an unknown system or tag is refused, listing what there is", () => {
    assert.throws(() => selectSystems("qemu,nope", tags), (e: unknown) => e instanceof UsageError && /no system `nope'/.test(e.message) && /aethelred, qemu, beorn/.test(e.message));
    assert.throws(() => selectSystems("@lab", tags), (e: unknown) => e instanceof UsageError && /@office, @vm, @x86/.test(e.message));
    assert.throws(() => selectSystems("qemu,,beorn", tags), (e: unknown) => e instanceof UsageError && /empty name/.test(e.message));
  });
});

describe("deploys side by side", () => {
  it("at most `jobs` at a time, every result in its place", async () => {
    let running = 0;
    let most = 0;
    const results = await runLimited([30, 10, 20, 5, 15], 2, async (ms) => {
      most = Math.max(most, ++running);
      await new Promise((resolve) => setTimeout(resolve, ms));
      running--;
      return ms * 2;
    });
    assert.deepEqual(results, [60, 20, 40, 10, 30]);
    assert.equal(most, 2);
  });
  it("nothing more starts once a result says stop (--fail-fast); what ran keeps its result", async () => {
    const started: number[] = [];
    const results = await runLimited([1, 2, 3, 4], 1, async (n) => (started.push(n), n), (n) => n === 2);
    assert.deepEqual(started, [1, 2]);
    assert.deepEqual(results, [1, 2, undefined, undefined]);
  });
  it("on a terminal, a line per machine, redrawn in place, only a message's first line", () => {
    let screen = "";
    const set = liveLines({ stdout: () => undefined, stderr: (text) => (screen += text), interactive: true }, ["aethelred", "qemu"]);
    set("qemu", "copying generation 3: 1.0 MiB");
    set("aethelred", "error: generation 4 failed the check `web':\n  502");
    const frames = screen.split("\x1b[2A");
    assert.equal(frames.length, 2, "the second drawing goes back up over the first");
    assert.equal(frames[1], "\x1b[2Kaethelred | error: generation 4 failed the check `web':\n\x1b[2Kqemu      | copying generation 3: 1.0 MiB\n");
  });
});
