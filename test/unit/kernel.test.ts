// The pure parts of building a kernel from source: the settings as a Kconfig
// fragment, the check that what was asked for stuck and why not, ccache's
// environment and its per-build stats.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { ccacheEnv, describeStats, kbuildMakeflags, parseStatsLog } from "../../src/steps/ccache.ts";
import { kbuildEnv, makeArgv } from "../../src/steps/kbuild.ts";
import { dependsOf, describeUnmet, parseConfig, settingsFragment, unmetSettings } from "../../src/steps/kconfig.ts";

const kconfig = readFileSync(fileURLToPath(new URL("../fixtures/kconfig/Kconfig", import.meta.url)), "utf8");

describe("kernel config assembly", () => {
  it("writes settings as .config lines: y/m, not set, numbers, strings quoted, hex bare", () => {
    assert.equal(
      settingsFragment({ VIRTIO_BLK: "y", KVM: "m", DEBUG_INFO: "n", NR_CPUS: 8, LOCALVERSION: "-keel", PHYSICAL_START: "0x1000000" }),
      'CONFIG_VIRTIO_BLK=y\nCONFIG_KVM=m\n# CONFIG_DEBUG_INFO is not set\nCONFIG_NR_CPUS=8\nCONFIG_LOCALVERSION="-keel"\nCONFIG_PHYSICAL_START=0x1000000\n',
    );
  });

  it("reads back what it wrote", () => {
    const text = settingsFragment({ VIRTIO_BLK: "y", DEBUG_INFO: "n", LOCALVERSION: "-keel" });
    assert.deepEqual([...parseConfig(text)], [["VIRTIO_BLK", "y"], ["DEBUG_INFO", "n"], ["LOCALVERSION", '"-keel"']]);
  });

  it("a later fragment's value wins, and only values that differ from the final config are unmet", () => {
    const requested = new Map([...parseConfig("CONFIG_NET=y\nCONFIG_IPC_NS=m\n"), ...parseConfig("CONFIG_IPC_NS=y\n# CONFIG_SWAP is not set\n")]);
    const final = parseConfig("CONFIG_NET=y\n# CONFIG_IPC_NS is not set\n");
    assert.deepEqual(unmetSettings(requested, final), [{ name: "IPC_NS", wanted: "y", got: "n" }]);
  });
});

describe("why a setting did not stick", () => {
  it("reads an entry's own depends on", () => assert.deepEqual(dependsOf(kconfig, "IPC_NS"), ["(SYSVIPC || POSIX_MQUEUE)"]));
  it("adds the if block around it", () => assert.deepEqual(dependsOf(kconfig, "VIRTIO_PCI"), ["VIRTIO_MENU", "PCI"]));
  it("adds the menu's dependency and joins continued lines", () => assert.deepEqual(dependsOf(kconfig, "VIRTIO_BLK"), ["BLOCK", "VIRTIO && BLK_DEV"]));
  it("a symbol declared elsewhere is undefined here", () => assert.equal(dependsOf(kconfig, "EXT4_FS"), undefined));
  it("a name that is only a prefix of another does not match", () => assert.equal(dependsOf(kconfig, "VIRTIO"), undefined));

  it("names the setting, its file, its dependencies and their values now", () => {
    const final = parseConfig("CONFIG_NET=y\n");
    assert.equal(
      describeUnmet({ name: "IPC_NS", wanted: "y", got: "n" }, { file: "init/Kconfig", depends: dependsOf(kconfig, "IPC_NS") ?? [] }, final),
      "- IPC_NS: asked for y, the final .config has it unset. init/Kconfig: depends on (SYSVIPC || POSIX_MQUEUE) (now SYSVIPC=n, POSIX_MQUEUE=n).",
    );
  });

  it("a name no Kconfig declares is called a likely typo", () =>
    assert.equal(
      describeUnmet({ name: "VIRTIO_BLOCK", wanted: "y", got: "n" }, undefined, new Map()),
      "- VIRTIO_BLOCK: asked for y, the final .config has it unset. No Kconfig file declares CONFIG_VIRTIO_BLOCK: check the name (without the CONFIG_ prefix).",
    ));

  it("an entry without depends on points at select and choice", () =>
    assert.match(describeUnmet({ name: "SELECTED_ONLY", wanted: "y", got: "n" }, { file: "Kconfig", depends: [] }, new Map()), /may be chosen by a `select`/));
});

describe("ccache for Kbuild", () => {
  it("configures ccache through the environment as the kernel needs", () => {
    assert.deepEqual(ccacheEnv({ dir: "/c", baseDir: "/s", statsLog: "/o/log" }), {
      CCACHE_DIR: "/c",
      CCACHE_BASEDIR: "/s",
      CCACHE_COMPILERCHECK: "content",
      CCACHE_SLOPPINESS: "time_macros,include_file_mtime,include_file_ctime,locale",
      CCACHE_STATSLOG: "/o/log",
      CCACHE_NOHASHDIR: "1",
    });
  });

  it("makes every make a keel build: the 64-bit x86 ARCH, CC and HOSTCC through ccache, no + in the release", () =>
    assert.equal(kbuildMakeflags(2, "amd64"), "-j2 ARCH=x86_64 CC=ccache\\ gcc HOSTCC=ccache\\ gcc LOCALVERSION="));

  it("runs make from the source with the output elsewhere", () =>
    assert.deepEqual(makeArgv({ src: "/store/s", obj: "/store/builds/k" }, "olddefconfig"), ["make", "-C", "/store/s", "O=/store/builds/k", "olddefconfig"]));

  it("shows Kbuild the source through the build directory, ccache's base_dir, so no command names where either is", () => {
    const env = kbuildEnv({}, { src: "/home/u/linux", obj: "/c/builds/k" }, "amd64");
    assert.equal(env.CCACHE_BASEDIR, "/c/builds/k");
    assert.match(env.MAKEFLAGS ?? "", / srctree=\/c\/builds\/k\/keel-src$/);
  });

  it("counts hits and misses from the stats log, not the finer counters", () => {
    const log = [
      "# /s/kernel/fork.c", "direct_cache_hit", "local_storage_hit", "local_storage_read_hit",
      "# /s/mm/swap.c", "direct_cache_miss", "preprocessed_cache_miss", "cache_miss", "local_storage_miss", "local_storage_write",
      "# /dev/null", "called_for_link",
      "# /s/init/main.c", "preprocessed_cache_hit", "direct_cache_miss",
    ].join("\n");
    const stats = parseStatsLog(log);
    assert.deepEqual(stats, { hits: 2, misses: 1, uncacheable: 1 });
    assert.equal(describeStats(stats), "ccache 2 hits, 1 misses, 66.7% hit rate");
  });
});
