// keel deploy, keel generations, keel rollback: a system shipped to a
// machine keel laid out (keel install, keel image), as its next generation.
// keel builds here, copies only what changed, writes the new boot entry as a
// trial (systemd-boot's boot counting: one try), reboots, checks the new
// boot over a new SSH connection, and only then blesses the entry. Whatever
// happens to keel or the network, the machine returns to the previous
// generation by itself: a failed boot has used its one try, a trial keel does
// not confirm reboots (keel-trial.service), a panic reboots (panic=).
import { mkdir, readFile, rm } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import path from "node:path";
import type { ResolvedSystem } from "../config/project.js";
import { MachineError, ProcessError, UsageError } from "../errors.js";
import { exec, systemOwners } from "../host/exec.js";
import { Remote, splitSshOptions } from "../host/ssh.js";
import { defaultEntry, diskCommandLine, entryName, isBad, loaderEntry, trialEntry, type Generation, type GenerationMeta } from "../image/layout.js";
import { subPlan } from "../plan/plan.js";
import { generationSources, generationTreeCommands } from "../steps/image.js";
import type { BootDescription } from "../steps/system.js";
import {
  bless,
  confirmTrial,
  espBytesNeeded,
  healthChecks,
  nextGeneration,
  putOnTrial,
  readState,
  rebootAndWait,
  renameEntry,
  sendGeneration,
  writeBootFiles,
  writeEntry,
  writeMeta,
  type CheckResult,
  type TargetState,
} from "../deploy/target.js";
import { defineCommand, secondsOption, systemArgument, type Context } from "./command.js";
import { formatBytes, rate } from "./output.js";
import { planFor, realizeShowingProgress, storeOption } from "./planning.js";

const modes = ["switch", "boot", "test"] as const;
type Mode = (typeof modes)[number];

const targetOptions = {
  "target-host": { type: "string", value: "user@host", description: "The machine (default: the system's deploy.targetHost)." },
  "ssh-opts": { type: "string", value: "options", dashValue: true, description: "More ssh options, e.g. '-p 8022' (after KEEL_SSHOPTS and deploy.sshOptions, they win)." },
  "boot-timeout": { type: "string", value: "seconds", description: "How long a boot may take to answer SSH and start its units (default 300)." },
} as const;

/**
 * The machine to deploy to, from the command line, KEEL_SSHOPTS (the seed's
 * NIX_SSHOPTS) and the config, in that order of precedence (ssh takes an
 * option's first value).
 */
function targetRemote(context: Context, command: string, config: ResolvedSystem, values: { readonly "target-host"?: string; readonly "ssh-opts"?: string }): Remote {
  const target = values["target-host"] ?? config.deploy.targetHost;
  if (target === null) throw new UsageError(`keel ${command}: which machine? The system sets no deploy.targetHost.\nFix: give --target-host user@host, or set deploy.targetHost in its config.`);
  const words = (text: string, where: string): string[] => {
    const split = splitSshOptions(text);
    if (split === undefined) throw new UsageError(`keel ${command}: ${where} ${text} has an unterminated quote.\nFix: close the quote.`);
    return split;
  };
  const options = [
    ...words(values["ssh-opts"] ?? "", "--ssh-opts"),
    ...words(context.env.KEEL_SSHOPTS ?? "", "KEEL_SSHOPTS"),
    ...config.deploy.sshOptions,
    // A dropped connection is noticed in 30 s, not at TCP's pace.
    ...["-o", "ServerAliveInterval=10", "-o", "ServerAliveCountMax=3"],
  ];
  return new Remote({ target, options, connectTimeout: 15, env: context.env });
}

/** "generation 3", with what keel deployed as it when known. */
function describe(state: TargetState, generation: number | null): string {
  if (generation === null) return "no keel generation";
  const meta = state.meta.get(generation);
  return meta === undefined ? `generation ${generation}` : `generation ${generation} (${meta.system}, ${meta.hash.slice(0, 12)})`;
}

/** The checks as lines of the report. */
function showChecks(results: readonly CheckResult[]): string {
  return results.map((r) => `  ${r.ok ? "ok  " : "FAIL"} ${r.name}${r.ok ? "" : `:\n${r.output.replace(/^/gm, "         ")}`}`).join("\n");
}

interface Trial {
  readonly remote: Remote;
  readonly say: (text: string) => void;
  readonly state: TargetState;
  readonly generation: number;
  readonly config: ResolvedSystem;
  readonly bootTimeout: number;
}

type TrialResult = { readonly ok: true; readonly state: TargetState } | { readonly ok: false; readonly running: number | null; readonly why: string };

/**
 * Reboots into the trial entry of `generation`, checks the boot and, when a
 * check fails, reboots back. The caller blesses (or not) on success.
 */
async function trialBoot(job: Trial): Promise<TrialResult> {
  const { remote, say, state, generation, config, bootTimeout } = job;
  const confirmTimeout = config.deploy.confirmTimeout;
  say(`rebooting ${remote.where} into generation ${generation} (a trial: unconfirmed after ${confirmTimeout} s, it reboots into generation ${state.running})`);
  const waiting = (elapsed: number) => say(`waiting for ${remote.where} to answer SSH (${elapsed.toFixed(0)} s)`);
  // A trial that never answers reboots by itself after confirmTimeout: keel waits for that boot too.
  const booted = await rebootAndWait(remote, state.bootId, bootTimeout + confirmTimeout + bootTimeout, waiting);
  if (booted === undefined) {
    return { ok: false, running: null, why: `${remote.where} did not answer SSH within ${bootTimeout * 2 + confirmTimeout} s of the reboot; look at its console` };
  }
  if (booted.running !== generation) {
    return {
      ok: false,
      running: booted.running,
      why:
        `generation ${generation} did not come up: the machine came back on ${describe(booted, booted.running)} by itself ` +
        `(its boot failed — a panic, a failing stage 1, or no SSH answer within deploy.confirmTimeout (${confirmTimeout} s); \`journalctl -b -1\` there tells which)`,
    };
  }
  say(`generation ${generation} booted and answers a new SSH connection; checking it`);
  const results = await healthChecks(remote, { essentialUnits: config.deploy.essentialUnits, checks: config.deploy.healthChecks, bootTimeout });
  say(`checks of generation ${generation}:\n${showChecks(results)}`);
  const failed = results.find((r) => !r.ok);
  if (failed === undefined) return { ok: true, state: booted };
  say(`${failed.name} failed; rebooting into the previous generation`);
  const back = await rebootAndWait(remote, booted.bootId, bootTimeout, waiting);
  return {
    ok: false,
    running: back?.running ?? null,
    why: `generation ${generation} failed the check \`${failed.name}'${failed.output === "" ? "" : `:\n${failed.output.replace(/^/gm, "  ")}`}${back === undefined ? `\nand ${remote.where} did not answer after the reboot back` : ""}`,
  };
}

/** The report's last line for a trial that failed: what the machine runs now. */
function rolledBack(result: Extract<TrialResult, { ok: false }>, previous: number | null): string {
  if (result.running === null) return `${result.why}.\nThe machine's state is unknown to keel; it boots generation ${previous} unless told otherwise.`;
  return `${result.why}\nThe machine rolled back and is running generation ${result.running}.`;
}

export const deployCommand = defineCommand({
  name: "deploy",
  summary: "build a system and deploy it to its machine over SSH (trial boot, health checks, automatic rollback)",
  description:
    "Builds the system here and copies it to the machine (installed by keel install or from keel image) as its next\n" +
    "generation: rsync against the generation it runs, so only changed files travel, into a temporary name renamed when\n" +
    "complete (an interrupted copy changes nothing and the next deploy resumes it). Then, by --mode:\n" +
    "  switch (default)  boot the new generation once as a trial; when it answers a new SSH connection and passes its\n" +
    "                    checks (no failed unit of deploy.essentialUnits, deploy.healthChecks), it becomes the default.\n" +
    "                    Otherwise the machine boots the previous generation: keel reboots it, or it does so by itself\n" +
    "                    (a panic, a failed boot, no confirmation within deploy.confirmTimeout).\n" +
    "  boot              make it the default for the next boot; no reboot now.\n" +
    "  test              boot it once and check it; the next boot returns to the previous generation.\n" +
    "SSH is OpenSSH with the user's config, agent and known_hosts; one master connection per deploy. Options come\n" +
    "from --ssh-opts, then KEEL_SSHOPTS (as NIX_SSHOPTS), then deploy.sshOptions.",
  positionals: [systemArgument],
  options: {
    ...targetOptions,
    mode: { type: "string", value: "switch|boot|test", description: "How the new generation is activated (default switch)." },
    "dry-run": { type: "boolean", description: "Build and say what would be sent (bytes), changing nothing on the machine." },
    store: storeOption,
  },
  examples: [
    ["keel deploy aethelred", "Rebuild the office machine and ship it to deploy.targetHost."],
    ["keel deploy aethelred --target-host root@localhost --ssh-opts '-p 8022'", "Through a tunnel, as NIX_SSHOPTS='-p 8022' did."],
    ["keel deploy aethelred --mode boot", "Make the new generation the default at the next boot, without rebooting."],
  ],
  async run(context, { values, positionals }) {
    const system = positionals[0] ?? "";
    const mode = (values.mode ?? "switch") as Mode;
    if (!modes.includes(mode)) throw new UsageError(`keel deploy: --mode ${values.mode} is not a mode.\nFix: give --mode switch, boot or test.`);
    const bootTimeout = secondsOption(values["boot-timeout"], "keel deploy", "boot-timeout", 300);
    const started = performance.now();
    const say = (text: string) => context.out.stderr(`keel deploy: ${text}\n`);
    const planned = await planFor(context, system, values.store);
    const config = planned.evaluated.config;
    const remote = targetRemote(context, "deploy", config, values);
    try {
      // Read first, so that a wrong host or a machine keel did not lay out is said before a build.
      await readState(remote);
      const realized = await realizeShowingProgress(context, { ...planned, plan: subPlan(planned.plan, planned.plan.top) }, false);
      if ("exitCode" in realized) return realized.exitCode;
      const boot = JSON.parse(await readFile(path.join(realized.path, "boot.json"), "utf8")) as BootDescription;
      // Again after the build, which can take longer than the machine stays up.
      const state = await readState(remote);
      if (state.running === null) throw new MachineError(`keel deploy: ${remote.where} did not boot a keel generation (no keel.generation= on its kernel command line).\nFix: boot it from its disk's keel entry, then deploy again.`);
      const number = nextGeneration(state);
      say(`${remote.where} runs ${describe(state, state.running)}; ${system} becomes generation ${number}`);
      const espNeeded = await espBytesNeeded(boot);
      if (espNeeded > state.espFree) {
        throw new MachineError(
          `keel deploy: the ESP of ${remote.where} (${state.esp}) has ${formatBytes(state.espFree)} free; generation ${number}'s kernel and initrd need ${formatBytes(espNeeded)}, ${formatBytes(espNeeded - state.espFree)} more. Nothing was changed.\n` +
            `Fix: free space there: remove old generations' EFI/keel/<N> directories and loader entries (never generation ${state.running}'s).`,
        );
      }
      const copied = await withTree(planned.store.root, realized.path, async (tree, within, size) => {
        let shown = 0;
        const copyStarted = performance.now();
        const onProgress = (bytes: number) => {
          if (performance.now() - shown < 2000) return;
          shown = performance.now();
          say(`copying generation ${number}: ${rate(bytes, null, copyStarted)}`);
        };
        try {
          const result = await sendGeneration(remote, state, tree, number, { within, onProgress, dryRun: values["dry-run"] === true });
          return { ...result, size, seconds: (performance.now() - copyStarted) / 1000 };
        } catch (error) {
          if (!(error instanceof ProcessError)) throw error;
          throw new MachineError(
            `keel deploy: copying generation ${number} to ${remote.where} failed (rsync exit code ${error.exitCode ?? error.signal}):\n${error.outputTail.trim().replace(/^/gm, "  ")}\n` +
              `The machine is as it was: it runs and boots ${describe(state, state.running)}; what arrived is kept in /keel/generations/.incoming-${number}.\n` +
              "Fix: check the connection and the free space there (`df /keel`), then run keel deploy again: it resumes the copy.",
          );
        }
      });
      if (values["dry-run"]) {
        say(`dry run: generation ${number} would send ${copied.files} changed files, ${formatBytes(copied.bytes)} before rsync's deltas and compression (the system is ${formatBytes(copied.size)}); nothing was changed on ${remote.where}.`);
        return 0;
      }
      const sent = `${formatBytes(copied.sent)} sent for ${copied.files} changed files (${((copied.sent / copied.size) * 100).toFixed(1)}% of the system's ${formatBytes(copied.size)}) in ${copied.seconds.toFixed(1)} s, ${formatBytes(copied.sent / Math.max(copied.seconds, 0.001))}/s`;
      say(`copied generation ${number}: ${sent}`);
      const meta: GenerationMeta = { system, hash: planned.plan.top.hash, release: boot.release, date: new Date().toISOString() };
      await writeMeta(remote, number, meta);
      say(`writing generation ${number}'s kernel ${boot.release} and initrd to the ESP (${state.esp})`);
      await writeBootFiles(remote, state, number, boot);
      const generation: Generation = { number, system, kernelParams: config.boot.kernelParams };
      const commandLine = diskCommandLine(state.rootUuid, generation);
      if (mode === "boot") {
        await writeEntry(remote, state, number, entryName(number), loaderEntry(commandLine, generation));
        say(`generation ${number} is the default from the next boot on; ${remote.where} still runs generation ${state.running} (--mode boot). ${elapsed(started)}`);
        return 0;
      }
      await writeEntry(remote, state, number, entryName(number, 1), trialEntry(loaderEntry(commandLine, generation)));
      const result = await trialBoot({ remote, say, state, generation: number, config, bootTimeout });
      if (!result.ok) {
        context.out.stderr(`error: keel deploy: ${rolledBack(result, state.running)}\n`);
        return 1;
      }
      await confirmTrial(remote);
      if (mode === "test") {
        say(`generation ${number} runs now (--mode test); the next boot returns to generation ${state.running}. ${elapsed(started)}`);
        return 0;
      }
      await bless(remote, result.state, number);
      say(`deployed ${system} to ${remote.where}: generation ${number} runs and is the default. ${elapsed(started)}`);
      return 0;
    } finally {
      await remote.disconnect();
      await planned.store.close();
    }
  },
});

const elapsed = (started: number) => `(${((performance.now() - started) / 1000).toFixed(1)} s)`;

/**
 * Unpacks the system's generation tree (root file system and kernel modules)
 * under the store's tmp/ for `use`, which gets the command rsync must run
 * under to read the files with their owners, and the tree's size.
 */
async function withTree<T>(store: string, system: string, use: (tree: string, within: readonly string[], bytes: number) => Promise<T>): Promise<T> {
  const tree = path.join(store, "tmp", `deploy.${process.pid}.${randomBytes(4).toString("hex")}`);
  const within = systemOwners();
  await mkdir(tree, { recursive: true });
  try {
    const parts = { ...generationSources({ rootfs: path.join(system, "rootfs"), kernel: path.join(system, "kernel") }), etc: null };
    await exec([...within, "sh", "-c", `set -e\n${generationTreeCommands(parts, tree).join("\n")}`]);
    const bytes = Number((await exec([...within, "du", "-sb", tree])).stdout.split("\t")[0]);
    return await use(tree, within, bytes);
  } finally {
    await exec([...within, "rm", "-rf", "--one-file-system", tree], { nothrow: true });
    await rm(tree, { recursive: true, force: true });
  }
}

/** The entry state of a generation as `keel generations` shows it. */
function entryState(state: TargetState, generation: number): string {
  const entry = state.entries.find((e) => e.generation === generation);
  if (entry === undefined) return "no boot entry";
  if (isBad(entry)) return "failed";
  return entry.triesLeft === null ? "" : "trial";
}

export const generationsCommand = defineCommand({
  name: "generations",
  summary: "list the generations a machine has: which runs, which boots by default",
  description:
    "Lists the generations on the system's machine (deploy.targetHost or --target-host): number, date, system and its\n" +
    "hash, kernel release, the bytes it holds beyond the generations before it, and whether it runs now, boots by\n" +
    "default, or failed its trial.",
  positionals: [systemArgument],
  options: { ...targetOptions, store: storeOption },
  examples: [["keel generations aethelred --target-host root@localhost --ssh-opts '-p 8022'", "The office machine's generations, through a tunnel."]],
  async run(context, { values, positionals }) {
    const planned = await planFor(context, positionals[0] ?? "", values.store);
    const remote = targetRemote(context, "generations", planned.evaluated.config, values);
    try {
      const state = await readState(remote);
      const sizes = (await remote.exec(["sh", "-c", `cd /keel/generations && du -sb ${state.generations.join(" ")}`])).stdout;
      const size = new Map(sizes.split("\n").filter(Boolean).map((line) => [Number(line.split("\t")[1]), Number(line.split("\t")[0])]));
      const fallback = defaultEntry(state.entries)?.generation;
      const rows = state.generations.map((g) => {
        const meta = state.meta.get(g);
        const flags = [g === state.running ? "running" : "", g === fallback ? "default" : "", entryState(state, g)].filter(Boolean).join(", ");
        return [String(g), meta?.date.slice(0, 19).replace("T", " ") ?? "-", meta?.system ?? "-", meta?.hash.slice(0, 12) ?? "-", meta?.release ?? "-", formatBytes(size.get(g) ?? 0), flags];
      });
      const header = ["GEN", "DATE (UTC)", "SYSTEM", "HASH", "KERNEL", "OWN SIZE", ""];
      const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
      for (const row of [header, ...rows]) context.out.stdout(`${row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join("  ").trimEnd()}\n`);
      return 0;
    } finally {
      await remote.disconnect();
      await planned.store.close();
    }
  },
});

export const rollbackCommand = defineCommand({
  name: "rollback",
  summary: "boot a machine's previous generation (or --to N), checked as a deploy is",
  description:
    "Makes an earlier generation the machine's default the way a deploy does: the newer generations' entries are set\n" +
    "aside (kept, not default), generation N boots as a trial, and only when it answers SSH and passes the checks does\n" +
    "it become the default; otherwise the machine returns to the generation it ran.",
  positionals: [systemArgument],
  options: { ...targetOptions, to: { type: "string", value: "N", description: "The generation to return to (default: the newest one before the running one)." }, store: storeOption },
  examples: [
    ["keel rollback aethelred", "Back to the generation before the running one."],
    ["keel rollback aethelred --to 1", "Back to generation 1."],
  ],
  async run(context, { values, positionals }) {
    const bootTimeout = secondsOption(values["boot-timeout"], "keel rollback", "boot-timeout", 300);
    const started = performance.now();
    const say = (text: string) => context.out.stderr(`keel rollback: ${text}\n`);
    const planned = await planFor(context, positionals[0] ?? "", values.store);
    const config = planned.evaluated.config;
    const remote = targetRemote(context, "rollback", config, values);
    try {
      const state = await readState(remote);
      const running = state.running ?? 0;
      const bootable = state.entries.filter((e) => state.generations.includes(e.generation));
      const to = values.to === undefined ? Math.max(...bootable.filter((e) => e.generation < running && !isBad(e)).map((e) => e.generation)) : Number(values.to);
      if (!Number.isInteger(to) || !bootable.some((e) => e.generation === to)) {
        throw new UsageError(
          `keel rollback: ${values.to === undefined ? "there is no earlier generation to return to" : `--to ${values.to} is not a generation ${remote.where} can boot`}.\n` +
            `Fix: name one of its generations with a boot entry: ${bootable.map((e) => e.generation).join(", ") || "(none)"} (see \`keel generations\`).`,
        );
      }
      if (to === running) throw new UsageError(`keel rollback: ${remote.where} runs generation ${to} already.\nFix: name another generation with --to.`);
      // Newer good entries are set aside (no tries left: bad, still in the menu), so that `to` is the newest good one.
      const setAside = state.entries.filter((e) => e.generation > to && !isBad(e));
      for (const entry of setAside) await renameEntry(remote, state, entry.generation, entryName(entry.generation, 0));
      await putOnTrial(remote, state, to);
      const result = await trialBoot({ remote, say, state, generation: to, config, bootTimeout });
      if (!result.ok) {
        // The entries set aside are good again: the machine boots what it ran before.
        const now = result.running === null ? undefined : await readState(remote);
        if (now !== undefined) for (const entry of setAside) await renameEntry(remote, now, entry.generation, entry.name);
        context.out.stderr(`error: keel rollback: ${rolledBack(result, state.running)}\n`);
        return 1;
      }
      await confirmTrial(remote);
      await bless(remote, result.state, to);
      const kept = setAside.length === 0 ? "" : ` the newer generations (${setAside.map((e) => e.generation).join(", ")}) are kept but no longer boot by default.`;
      say(`${remote.where} runs generation ${to}, its default now;${kept} ${elapsed(started)}`);
      return 0;
    } finally {
      await remote.disconnect();
      await planned.store.close();
    }
  },
});
