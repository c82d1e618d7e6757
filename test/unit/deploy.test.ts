// keel deploy's pure parts: the next generation's number, the generations a
// copy hard-links from, and what every
// system carries so that a trial boot protects itself (keel-trial.service,
// systemd's own blessing held back, the watchdog), from deploy's options.
import assert from "node:assert/strict";
import path from "node:path";
import { describe, it } from "node:test";
import { evaluateSystem, type ResolvedSystem } from "../../src/config/project.ts";
import { generationsToRemove, linkBases, nextGeneration } from "../../src/deploy/target.ts";
import { ConfigError } from "../../src/errors.ts";
import { parseEntryName } from "../../src/image/layout.ts";
import { defineModule } from "../../src/index.ts";

const rootOnVda = defineModule({ fileSystems: { "/": { device: "/dev/vda", fsType: "ext4" } } });

function configOf(...modules: object[]): ResolvedSystem {
  const project = { file: path.resolve("keel.config.ts"), inputs: {}, systems: new Map([["aethelred", [rootOnVda, ...modules]]]) };
  return evaluateSystem(project, "aethelred").config;
}

const etcText = (config: ResolvedSystem, file: string) => config.environment.etc[file]?.text ?? assert.fail(`no /etc/${file}`);

describe("the generations a copy hard-links from", () => {
  it("are the running one first, then the others newest first", () => {
    assert.deepEqual(linkBases({ running: 1, generations: [1, 2, 3] }), [1, 3, 2]);
    assert.deepEqual(linkBases({ running: null, generations: [1, 2] }), [2, 1], "a machine not booted by keel");
    assert.deepEqual(linkBases({ running: 9, generations: [1, 2] }), [2, 1], "a running generation removed from the disk");
  });
  it("are at most 20, rsync's limit", () => {
    assert.deepEqual(linkBases({ running: 3, generations: Array.from({ length: 30 }, (_, i) => i + 1) }).slice(0, 3), [3, 30, 29]);
    assert.equal(linkBases({ running: 3, generations: Array.from({ length: 30 }, (_, i) => i + 1) }).length, 20);
  });
});

describe("the next generation's number", () => {
  const entries = (...names: string[]) => names.map((n) => parseEntryName(n) ?? assert.fail(n));
  it("is above every generation and every boot entry, failed ones included", () => {
    assert.equal(nextGeneration({ generations: [1], entries: entries("keel-1.conf") }), 2);
    assert.equal(nextGeneration({ generations: [1, 2, 3], entries: entries("keel-1.conf", "keel-2.conf", "keel-3+0-1.conf") }), 4);
    assert.equal(nextGeneration({ generations: [1, 7], entries: entries("keel-1.conf") }), 8, "a generation whose entry was never written");
    assert.equal(nextGeneration({ generations: [1], entries: entries("keel-1.conf", "keel-5+0-1.conf") }), 6, "an entry whose generation was removed");
  });
});

describe("the generations keel gc --target --keep N removes", () => {
  const entries = (...names: string[]) => names.map((n) => parseEntryName(n) ?? assert.fail(n));
  it("are all but the N newest", () => {
    assert.deepEqual(generationsToRemove({ running: 5, generations: [1, 2, 3, 4, 5], entries: entries("keel-1.conf", "keel-2.conf", "keel-3.conf", "keel-4.conf", "keel-5.conf") }, 2), [1, 2, 3]);
    assert.deepEqual(generationsToRemove({ running: 2, generations: [1, 2], entries: entries("keel-1.conf", "keel-2.conf") }, 5), []);
  });
  it("never the running one nor the one that boots by default", () => {
    // Rolled back to 2: 3 and 4 are set aside (no tries left), 2 runs and is the default.
    const state = { running: 2, generations: [1, 2, 3, 4], entries: entries("keel-1.conf", "keel-2.conf", "keel-3+0.conf", "keel-4+0.conf") };
    assert.deepEqual(generationsToRemove(state, 1), [1, 3]);
    // Deployed with --mode boot: 3 is the default, 2 runs.
    assert.deepEqual(generationsToRemove({ running: 2, generations: [1, 2, 3], entries: entries("keel-1.conf", "keel-2.conf", "keel-3.conf") }, 1), [1]);
  });
  it("include generations of which only the tree or only the entry is left", () => {
    assert.deepEqual(generationsToRemove({ running: 4, generations: [1, 3, 4], entries: entries("keel-2.conf", "keel-4.conf") }, 1), [1, 2, 3]);
  });
});

describe("deploy's options on the machine", () => {
  it("a trial boot reboots unless confirmed within deploy.confirmTimeout; it survives emergency mode; systemd's own blessing waits for keel", () => {
    const config = configOf(defineModule({ deploy: { confirmTimeout: 45 } }));
    const unit = etcText(config, "systemd/system/keel-trial.service");
    for (const line of ["DefaultDependencies=no", "ConditionKernelCommandLine=keel.trial", "IgnoreOnIsolate=yes", "WantedBy=sysinit.target"]) assert.match(unit, new RegExp(`^${line}$`, "m"));
    const script = etcText(config, "keel/services/keel-trial-start");
    assert.match(script, /^sleep 45$/m);
    assert.match(script, /^\[ -e \/run\/keel\/confirmed \] && exit 0$/m);
    assert.match(script, /^systemctl --no-block reboot$/m);
    assert.match(etcText(config, "systemd/system/systemd-bless-boot.service.d/keel.conf"), /^ConditionKernelCommandLine=!keel\.trial$/m);
  });
  it("the hardware watchdog is on by default and off at 0", () => {
    assert.match(etcText(configOf(), "systemd/system.conf.d/keel-watchdog.conf"), /^RuntimeWatchdogSec=60s$/m);
    assert.equal(configOf(defineModule({ deploy: { watchdogSec: 0 } })).environment.etc["systemd/system.conf.d/keel-watchdog.conf"], undefined);
  });
  it("a health check names exactly one of command, http and tcp", () => {
    assert.throws(
      () => configOf(defineModule({ deploy: { healthChecks: { web: { http: "http://127.0.0.1/", tcp: 80 } } } })),
      (error: unknown) => error instanceof ConfigError && /deploy\.healthChecks\.web must name exactly one of command, http and tcp\./.test(error.message),
    );
    assert.deepEqual(configOf(defineModule({ deploy: { healthChecks: { db: { tcp: 5432 } } } })).deploy.healthChecks.db, { command: null, http: null, tcp: 5432, timeout: 30 });
  });
});
