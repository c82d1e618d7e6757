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
import { evaluateSystem, type ResolvedSystem } from "../config/project.js";
import { MachineError, ProcessError, UsageError } from "../errors.js";
import { exec, systemOwners } from "../host/exec.js";
import type { Remote } from "../host/ssh.js";
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
import { systemDiff } from "../deploy/diff.js";
import { runLimited, selectSystems } from "../deploy/fleet.js";
import { defineCommand, secondsOption, systemArgument, type Context } from "./command.js";
import { formatDiff } from "./diff.js";
import { formatBytes, formatTable, liveLines, rate } from "./output.js";
import { planFor, realizeShowingProgress, storeOption, type PlannedSystem } from "./planning.js";
import { describeGeneration, gainRoot, openTarget, targetOptions, targetRemote } from "./target.js";

const modes = ["switch", "boot", "test"] as const;
type Mode = (typeof modes)[number];

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
        `generation ${generation} did not come up: the machine came back on ${describeGeneration(booted, booted.running)} by itself ` +
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

/** What one machine's deploy came to: the report's last line, and a row of `--on`'s table. */
interface Outcome {
  readonly system: string;
  readonly where: string;
  readonly ok: boolean;
  /** "deployed", "default from the next boot", "runs until the next boot", "dry run", "rolled back", "failed", "not started". */
  readonly result: string;
  readonly generation: number | null;
  readonly seconds: number;
  readonly sent: number | null;
  /** For a failure: what happened, in keel's words. */
  readonly why?: string;
}

interface Activation {
  readonly mode: Mode;
  readonly bootTimeout: number;
  readonly dryRun: boolean;
}

/** A machine being deployed: its system, planned, and the connection to it. */
interface Machine {
  readonly system: string;
  readonly planned: PlannedSystem;
  readonly remote: Remote;
  readonly say: (text: string) => void;
  /** Where the diff of a dry run goes. */
  readonly show: (text: string) => void;
}

/**
 * Ships the built system `built` (its store path) to the machine and
 * activates it by mode. A copy that fails and anything refused before it
 * throws (the machine is as it was); a trial that fails is an outcome.
 */
async function ship(machine: Machine, built: string, activation: Activation, started: number): Promise<Outcome> {
  const { system, planned, remote, say } = machine;
  const config = planned.evaluated.config;
  const outcome = (ok: boolean, result: string, generation: number | null, sent: number | null, why?: string): Outcome => ({
    system,
    where: remote.where,
    ok,
    result,
    generation,
    seconds: (performance.now() - started) / 1000,
    sent,
    ...(why === undefined ? {} : { why }),
  });
  const boot = JSON.parse(await readFile(path.join(built, "boot.json"), "utf8")) as BootDescription;
  // Again after the build, which can take longer than the machine stays up.
  const state = await readState(remote);
  if (state.running === null) throw new MachineError(`keel deploy: ${remote.where} did not boot a keel generation (no keel.generation= on its kernel command line).\nFix: boot it from its disk's keel entry, then deploy again.`);
  const number = nextGeneration(state);
  if (activation.dryRun) {
    const diff = await withTree(planned.store.root, built, (tree) => systemDiff(remote, state.running as number, { ...tree, release: boot.release, kernelConfig: path.join(built, "kernel", "config") }, state.meta.get(state.running as number)?.release ?? null));
    machine.show(`${diffTitle(system, remote, state, number)}\n${formatDiff(diff)}`);
    say(`dry run: nothing was changed on ${remote.where}.`);
    return outcome(true, "dry run", number, diff.bytes);
  }
  say(`${remote.where} runs ${describeGeneration(state, state.running)}; ${system} becomes generation ${number}`);
  const espNeeded = await espBytesNeeded(boot);
  if (espNeeded > state.espFree) {
    throw new MachineError(
      `keel deploy: the ESP of ${remote.where} (${state.esp}) has ${formatBytes(state.espFree)} free; generation ${number}'s kernel and initrd need ${formatBytes(espNeeded)}, ${formatBytes(espNeeded - state.espFree)} more. Nothing was changed.\n` +
        `Fix: remove old generations there: \`keel gc --target ${system} --keep 2\` (never the running or default one), then deploy again.`,
    );
  }
  const copied = await withTree(planned.store.root, built, async (tree) => {
    let shown = 0;
    const copyStarted = performance.now();
    const onProgress = (bytes: number) => {
      if (performance.now() - shown < 2000) return;
      shown = performance.now();
      say(`copying generation ${number}: ${rate(bytes, null, copyStarted)}`);
    };
    try {
      const result = await sendGeneration(remote, state, tree.dir, number, { within: tree.within, onProgress });
      return { ...result, size: tree.size, seconds: (performance.now() - copyStarted) / 1000 };
    } catch (error) {
      if (!(error instanceof ProcessError)) throw error;
      throw new MachineError(
        `keel deploy: copying generation ${number} to ${remote.where} failed (rsync exit code ${error.exitCode ?? error.signal}):\n${error.outputTail.trim().replace(/^/gm, "  ")}\n` +
          `The machine is as it was: it runs and boots ${describeGeneration(state, state.running)}; what arrived is kept in /keel/generations/.incoming-${number}.\n` +
          `Fix: check the connection and the free space there (\`df /keel\`; \`keel gc --target ${system} --keep 2\` frees old generations), then run keel deploy again: it resumes the copy.`,
      );
    }
  });
  const sent = `${formatBytes(copied.sent)} sent for ${copied.files} changed files (${((copied.sent / copied.size) * 100).toFixed(1)}% of the system's ${formatBytes(copied.size)}) in ${copied.seconds.toFixed(1)} s, ${formatBytes(copied.sent / Math.max(copied.seconds, 0.001))}/s`;
  say(`copied generation ${number}: ${sent}`);
  const meta: GenerationMeta = { system, hash: planned.plan.top.hash, release: boot.release, date: new Date().toISOString() };
  const generation: Generation = { number, system, kernelParams: config.boot.kernelParams };
  const commandLine = diskCommandLine(state.rootUuid, generation);
  const entry = activation.mode === "boot" ? { name: entryName(number), text: loaderEntry(commandLine, generation) } : { name: entryName(number, 1), text: trialEntry(loaderEntry(commandLine, generation)) };
  let writingEntry = false;
  try {
    await writeMeta(remote, number, meta);
    say(`writing generation ${number}'s kernel ${boot.release} and initrd to the ESP (${state.esp})`);
    await writeBootFiles(remote, state, number, boot);
    writingEntry = true;
    await writeEntry(remote, state, number, entry.name, entry.text);
  } catch (error) {
    if (!(error instanceof ProcessError)) throw error;
    const boots = writingEntry
      ? `it boots ${describeGeneration(state, state.running)}, or, if its entry was written in full, generation ${number} ${activation.mode === "boot" ? "(--mode boot)" : `once as a trial that falls back to generation ${state.running}`}`
      : `no boot entry names generation ${number} yet: it boots ${describeGeneration(state, state.running)}`;
    throw new MachineError(
      `keel deploy: ${remote.where} stopped answering while generation ${number}'s boot files were written (${error.outputTail.trim().split("\n").pop() ?? `exit code ${error.exitCode}`}).\n` +
        `The machine is safe: ${boots}.\nFix: once it answers again (it may have lost power or its network), run keel deploy again.`,
    );
  }
  if (activation.mode === "boot") {
    say(`generation ${number} is the default from the next boot on; ${remote.where} still runs generation ${state.running} (--mode boot). ${elapsed(started)}`);
    return outcome(true, "default from the next boot", number, copied.sent);
  }
  const result = await trialBoot({ remote, say, state, generation: number, config, bootTimeout: activation.bootTimeout });
  if (!result.ok) return outcome(false, result.running === null ? "failed" : `rolled back to ${result.running}`, result.running, copied.sent, rolledBack(result, state.running));
  await confirmTrial(remote);
  if (activation.mode === "test") {
    say(`generation ${number} runs now (--mode test); the next boot returns to generation ${state.running}. ${elapsed(started)}`);
    return outcome(true, "runs until the next boot", number, copied.sent);
  }
  await bless(remote, result.state, number);
  say(`deployed ${system} to ${remote.where}: generation ${number} runs and is the default. ${elapsed(started)}`);
  return outcome(true, "deployed", number, copied.sent);
}

/** The first line of a diff: what is compared with what. */
function diffTitle(system: string, remote: Remote, state: TargetState, number: number): string {
  return `${system} (would be generation ${number}) against ${describeGeneration(state, state.running)}, which ${remote.where} runs:`;
}

const activationOptions = {
  mode: { type: "string", value: "switch|boot|test", description: "How the new generation is activated (default switch)." },
  "dry-run": { type: "boolean", description: "Build and show what would change (keel diff), changing nothing on the machine." },
} as const;

function activationOf(values: { readonly mode?: string; readonly "boot-timeout"?: string; readonly "dry-run"?: boolean }): Activation {
  const mode = (values.mode ?? "switch") as Mode;
  if (!modes.includes(mode)) throw new UsageError(`keel deploy: --mode ${values.mode} is not a mode.\nFix: give --mode switch, boot or test.`);
  return { mode, bootTimeout: secondsOption(values["boot-timeout"], "keel deploy", "boot-timeout", 300), dryRun: values["dry-run"] === true };
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
    "from --ssh-opts, then KEEL_SSHOPTS (as NIX_SSHOPTS), then deploy.sshOptions.\n" +
    "--on deploys several systems (names and @tags of deploy.tags): each is built, then up to --jobs machines are\n" +
    "deployed side by side, a line each as they go; a table ends it. One failure stops the others only with --fail-fast.",
  positionals: [{ ...systemArgument, required: false }],
  options: {
    ...targetOptions,
    ...activationOptions,
    on: { type: "string", value: "system,@tag,…", description: "Deploy these systems (and those whose deploy.tags has the tag) instead of one." },
    jobs: { type: "string", value: "N", description: "With --on: how many machines are deployed at once (default 4)." },
    "fail-fast": { type: "boolean", description: "With --on: start no further machine once one has failed." },
    json: { type: "boolean", description: "With --on: print events and the results as JSON lines on standard output." },
    store: storeOption,
  },
  examples: [
    ["keel deploy aethelred", "Rebuild the office machine and ship it to deploy.targetHost."],
    ["keel deploy aethelred --target-host root@localhost --ssh-opts '-p 8022'", "Through a tunnel, as NIX_SSHOPTS='-p 8022' did."],
    ["keel deploy aethelred --mode boot", "Make the new generation the default at the next boot, without rebooting."],
    ["keel deploy aethelred --dry-run", "Show what would change there: packages, kernel, /etc, units, bytes."],
    ["keel deploy --on @office --jobs 8", "Every system tagged office, eight machines at a time."],
  ],
  async run(context, { values, positionals }) {
    const activation = activationOf(values);
    if (values.on !== undefined) {
      if (positionals[0] !== undefined) throw new UsageError(`keel deploy: give the system ${positionals[0]} or --on ${values.on}, not both.\nFix: add ${positionals[0]} to --on.`);
      return deployMany(context, values.on, values, activation);
    }
    const system = positionals[0];
    if (system === undefined) throw new UsageError("keel deploy: which system? Name one, or several with --on.\nFix: e.g. `keel deploy aethelred`, or `keel deploy --on aethelred,@office`.");
    const fleetOnly = (["jobs", "fail-fast", "json"] as const).find((o) => values[o] !== undefined);
    if (fleetOnly !== undefined) throw new UsageError(`keel deploy: --${fleetOnly} is for deploying several systems with --on.\nFix: add --on ${system}, or drop --${fleetOnly}.`);
    return deployOne(context, "deploy", system, values, activation);
  },
});

export const diffCommand = defineCommand({
  name: "diff",
  summary: "what deploying a system would change on its machine: packages, kernel, /etc, units, bytes",
  description:
    "Builds the system and compares it with the generation its machine runs (deploy.targetHost or --target-host),\n" +
    "changing nothing there: Debian packages added, removed and upgraded with their versions; the kernel's release\n" +
    "and the config options that change; the files under /etc as a unified diff (a file not readable by all is named,\n" +
    "not shown); systemd units added, removed and changed; and the bytes a deploy sends. The same as keel deploy --dry-run.",
  positionals: [systemArgument],
  options: { "target-host": targetOptions["target-host"], "ssh-opts": targetOptions["ssh-opts"], store: storeOption },
  examples: [
    ["keel diff aethelred", "What keel deploy aethelred would change on the office machine."],
    ["keel diff aethelred --target-host root@localhost --ssh-opts '-p 8022'", "The same, through a tunnel."],
  ],
  run: (context, { values, positionals }) => deployOne(context, "diff", positionals[0] ?? "", values, { mode: "switch", bootTimeout: 0, dryRun: true }),
});

/** One system to its machine: the machine is asked first (a wrong host is said before a build), then the build, then ship. */
async function deployOne(
  context: Context,
  command: "deploy" | "diff",
  system: string,
  values: { readonly store?: string; readonly "target-host"?: string; readonly "ssh-opts"?: string },
  activation: Activation,
): Promise<number> {
  const started = performance.now();
  const planned = await planFor(context, system, values.store);
  const remote = await openTarget(context, command, planned.evaluated.config, values);
  const machine: Machine = { system, planned, remote, say: (text) => context.out.stderr(`keel ${command}: ${text}\n`), show: (text) => context.out.stdout(text) };
  try {
    await readState(remote);
    const realized = await realizeShowingProgress(context, { ...planned, plan: subPlan(planned.plan, planned.plan.top) }, false);
    if ("exitCode" in realized) return realized.exitCode;
    const outcome = await ship(machine, realized.path, activation, started);
    if (outcome.ok) return 0;
    context.out.stderr(`error: keel ${command}: ${outcome.why}\n`);
    return 1;
  } finally {
    await remote.disconnect();
    await planned.store.close();
  }
}

/** `keel deploy --on …`: build each system, then deploy up to --jobs machines at once; a table (or JSON lines) at the end. */
async function deployMany(
  context: Context,
  on: string,
  values: { readonly jobs?: string; readonly "fail-fast"?: boolean; readonly json?: boolean; readonly store?: string; readonly "target-host"?: string; readonly "ssh-opts"?: string },
  activation: Activation,
): Promise<number> {
  const project = await context.project();
  const tags = new Map([...project.systems.keys()].map((s) => [s, evaluateSystem(project, s).config.deploy.tags] as const));
  const systems = selectSystems(on, tags);
  if (values["target-host"] !== undefined && systems.length > 1) {
    throw new UsageError(`keel deploy: --target-host names one machine, and --on ${on} names ${systems.length} systems (${systems.join(", ")}).\nFix: set deploy.targetHost in each system's config, or deploy them one at a time.`);
  }
  const jobs = values.jobs === undefined ? 4 : Number(values.jobs);
  if (!Number.isInteger(jobs) || jobs < 1) throw new UsageError(`keel deploy: --jobs ${values.jobs} is not a number of machines.\nFix: give --jobs N, N at least 1.`);
  const json = values.json === true;
  const event = (e: object) => context.out.stdout(`${JSON.stringify(e)}\n`);
  const width = Math.max(...systems.map((s) => s.length));
  // Plain lines, `system | text`; while the machines are deployed side by side on a terminal, a line each redrawn in place.
  let sink = (system: string, text: string) => (json ? event({ type: "progress", system, text }) : context.out.stderr(`${system.padEnd(width)} | ${text}\n`));
  const line = (system: string) => (text: string) => sink(system, text);
  const machines: Machine[] = [];
  const outcomes = new Map<string, Outcome>();
  /** Dry runs' diffs, shown together after the machines are done (not through their live lines). */
  const diffs: string[] = [];
  const failed = (system: string, where: string, error: unknown, started: number): Outcome => ({
    system,
    where,
    ok: false,
    result: "failed",
    generation: null,
    seconds: (performance.now() - started) / 1000,
    sent: null,
    why: error instanceof Error ? error.message.replace(/^keel deploy: /, "") : String(error),
  });
  try {
    for (const system of systems) {
      const planned = await planFor(context, system, values.store);
      const remote = targetRemote(context, "deploy", planned.evaluated.config, values);
      machines.push({ system, planned, remote, say: line(system), show: json ? (text) => event({ type: "diff", system, text }) : (text) => diffs.push(text) });
    }
    // Every machine is asked first, so that one that cannot be reached is known before the builds.
    await Promise.all(
      machines.map(async (m) => {
        const started = performance.now();
        await gainRoot(context, "deploy", m.remote)
          .then(() => readState(m.remote))
          .catch((error: unknown) => {
            const outcome = failed(m.system, m.remote.where, error, started);
            m.say(`error: ${outcome.why}`);
            outcomes.set(m.system, outcome);
          });
      }),
    );
    const notStarted = (m: Machine): Outcome => ({ system: m.system, where: m.remote.where, ok: false, result: "not started (--fail-fast)", generation: null, seconds: 0, sent: null });
    if (values["fail-fast"] === true && outcomes.size > 0) for (const m of machines) if (!outcomes.has(m.system)) outcomes.set(m.system, notStarted(m));
    const built = new Map<string, string>();
    for (const m of machines.filter((m) => !outcomes.has(m.system))) {
      m.say("building");
      const realized = await realizeShowingProgress(context, { ...m.planned, plan: subPlan(m.planned.plan, m.planned.plan.top) }, json);
      if ("exitCode" in realized) return realized.exitCode;
      built.set(m.system, realized.path);
    }
    const ready = machines.filter((m) => built.has(m.system));
    if (context.out.interactive === true && !json) sink = liveLines(context.out, systems);
    const results = await runLimited(
      ready,
      jobs,
      async (m) => {
        const started = performance.now();
        const outcome = await ship(m, built.get(m.system) as string, activation, started).catch((error: unknown) => failed(m.system, m.remote.where, error, started));
        if (!outcome.ok) m.say(`error: ${outcome.why}`);
        return outcome;
      },
      (outcome) => values["fail-fast"] === true && !outcome.ok,
    );
    for (const [i, m] of ready.entries()) {
      outcomes.set(m.system, results[i] ?? notStarted(m));
    }
  } finally {
    await Promise.all(machines.map((m) => m.remote.disconnect()));
    await Promise.all(machines.map((m) => m.planned.store.close()));
  }
  const all = systems.map((s) => outcomes.get(s) as Outcome);
  if (json) for (const o of all) event({ type: "result", ...o });
  else {
    for (const diff of diffs) context.out.stdout(`${diff}\n`);
    // A terminal's live lines showed only the first line of each failure.
    if (context.out.interactive === true) for (const o of all.filter((o) => o.why !== undefined)) context.out.stderr(`error: ${o.system}: ${o.why}\n`);
    const rows = all.map((o) => [o.system, o.where, o.generation === null ? "-" : String(o.generation), o.result, `${o.seconds.toFixed(1)} s`, o.sent === null ? "-" : formatBytes(o.sent)]);
    context.out.stdout(formatTable(["MACHINE", "TARGET", "GEN", "RESULT", "TIME", "SENT"], rows));
  }
  return all.every((o) => o.ok) ? 0 : 1;
}

const elapsed = (started: number) => `(${((performance.now() - started) / 1000).toFixed(1)} s)`;

/** A generation's tree unpacked here: where, the command rsync must run under to read its files with their owners, its size. */
interface Tree {
  readonly dir: string;
  readonly within: readonly string[];
  readonly size: number;
}

/**
 * Unpacks the system's generation tree (root file system, kernel modules
 * and config) under the store's tmp/ for `use`, removing it after.
 */
async function withTree<T>(store: string, system: string, use: (tree: Tree) => Promise<T>): Promise<T> {
  const dir = path.join(store, "tmp", `deploy.${process.pid}.${randomBytes(4).toString("hex")}`);
  const within = systemOwners();
  await mkdir(dir, { recursive: true });
  try {
    const parts = { ...generationSources({ rootfs: path.join(system, "rootfs"), kernel: path.join(system, "kernel") }), etc: null };
    await exec([...within, "sh", "-c", `set -e\n${generationTreeCommands(parts, dir).join("\n")}`]);
    const size = Number((await exec([...within, "du", "-sb", dir])).stdout.split("\t")[0]);
    return await use({ dir, within, size });
  } finally {
    await exec([...within, "rm", "-rf", "--one-file-system", dir], { nothrow: true });
    await rm(dir, { recursive: true, force: true });
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
    const remote = await openTarget(context, "generations", planned.evaluated.config, values);
    try {
      const state = await readState(remote);
      const sizes = (await remote.exec(["sh", "-c", `cd /keel/generations && du -sb ${state.generations.join(" ")}`])).stdout;
      const size = new Map(sizes.split("\n").filter(Boolean).map((line) => [Number(line.split("\t")[1]), Number(line.split("\t")[0])]));
      // A generation keel did not deploy (the image's or install's first) has no meta: its tree names its kernel.
      const unknown = state.generations.filter((g) => !state.meta.has(g));
      const kernels = unknown.length === 0 ? "" : (await remote.exec(["sh", "-c", `cd /keel/generations && for g in ${unknown.join(" ")}; do echo "$g $(ls "$g/usr/lib/modules" | head -n 1)"; done`])).stdout;
      const release = new Map(kernels.split("\n").filter(Boolean).map((line) => [Number(line.split(" ")[0]), line.split(" ")[1] || "-"]));
      const fallback = defaultEntry(state.entries)?.generation;
      const rows = state.generations.map((g) => {
        const meta = state.meta.get(g);
        const flags = [g === state.running ? "running" : "", g === fallback ? "default" : "", entryState(state, g)].filter(Boolean).join(", ");
        return [String(g), meta?.date.slice(0, 19).replace("T", " ") ?? "-", meta?.system ?? "-", meta?.hash.slice(0, 12) ?? "-", meta?.release ?? release.get(g) ?? "-", formatBytes(size.get(g) ?? 0), flags];
      });
      const header = ["GEN", "DATE (UTC)", "SYSTEM", "HASH", "KERNEL", "OWN SIZE", ""];
      context.out.stdout(formatTable(header, rows));
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
    const remote = await openTarget(context, "rollback", config, values);
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
