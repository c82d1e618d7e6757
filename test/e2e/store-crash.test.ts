// The store against real kills: builds and gcs in processes of their own,
// several at once, SIGKILLed or SIGTERMed at random points (or left to
// finish). Afterwards every entry under its final name is trusted and whole,
// no tool outlived its process, the next gc clears tmp/ and locks/, and each
// step builds again.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { groupMembers } from "../../src/host/processes.ts";
import { Store } from "../../src/store/store.ts";
import { contentOf, files, hashOf, kinds, type Kind } from "../fixtures/store-steps.ts";

const worker = fileURLToPath(new URL("../fixtures/store-worker.ts", import.meta.url));
const scratch = mkdtempSync(path.join(os.tmpdir(), "keel-store-crash-"));
after(() => rmSync(scratch, { recursive: true, force: true }));
const root = path.join(scratch, "store");
const link = path.join(scratch, "result");
const generations = 3;
const rounds = 20;

type Fate = "SIGKILL" | "SIGTERM" | "finished";

interface Outcome {
  readonly action: string;
  readonly fate: Fate;
  /** The last phase the worker reported before it was killed. */
  readonly phase: string;
  readonly code: number | null;
  readonly tools: number[];
}

function run(args: readonly string[], fate: Fate, delay: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", worker, root, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    const lines: string[] = [];
    let phase = "starting";
    let stderr = "";
    let buffered = "";
    child.stdout.on("data", (chunk: Buffer) => {
      buffered += chunk.toString();
      const complete = buffered.split("\n");
      buffered = complete.pop() ?? "";
      for (const line of complete) {
        lines.push(line);
        if (line === "started" && fate !== "finished") setTimeout(() => child.kill(fate), delay);
      }
    });
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("close", (code) => {
      const tools = lines.flatMap((l) => (l.startsWith("tool ") ? [Number(l.slice(5))] : []));
      phase = lines.filter((l) => !l.startsWith("tool ")).at(-1) ?? phase;
      if (fate === "finished") assert.equal(code, 0, `${args.join(" ")}: ${stderr}`);
      resolve({ action: args[0] === "gc" ? "gc" : `build ${args[1]}`, fate, phase, code, tools });
    });
  });
}

function randomAction(random: () => number): string[] {
  if (random() < 0.3) return ["gc"];
  const kind = kinds[Math.floor(random() * kinds.length)] as Kind;
  return ["build", kind, String(Math.floor(random() * generations)), link];
}

/** Whether an entry's files are all there, each with what its tool wrote. */
function whole(entry: string, kind: Kind, generation: number): boolean {
  if (readFileSync(path.join(entry, "manifest"), "utf8") !== `${files}\n`) return false;
  for (let i = 0; i < files; i++) if (readFileSync(path.join(entry, `f${i}`), "utf8") !== contentOf(kind, generation, i)) return false;
  return true;
}

test("builds and gcs killed at random points leave no entry that a later build trusts wrongly", { timeout: 600_000 }, async (t) => {
  let seed = Number(process.env.KEEL_TEST_SEED ?? Date.now() % 100_000);
  t.diagnostic(`seed ${seed} (KEEL_TEST_SEED repeats it)`);
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const outcomes: Outcome[] = [];
  for (let round = 0; round < rounds; round++) {
    // Two at once, so that builds meet builds and gc under the locks.
    const pair = [0, 1].map(() => {
      const draw = random();
      const fate: Fate = draw < 0.4 ? "SIGKILL" : draw < 0.7 ? "SIGTERM" : "finished";
      const action = randomAction(random);
      // Within the time the action takes: gc a few tens of ms, each step of a build about 0.6 s.
      const span = action[0] === "gc" ? 150 : 600 * (kinds.indexOf(action[1] as Kind) + 1);
      return run(action, fate, Math.floor(random() * span));
    });
    outcomes.push(...(await Promise.all(pair)));
  }

  // A SIGTERMed process stops its tools before it exits; a SIGKILLed one's tools die with it.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  for (const outcome of outcomes) for (const pid of outcome.tools) assert.deepEqual(groupMembers(pid), [], `a tool of ${outcome.action} (${outcome.fate}) outlived it`);
  // A worker that had printed its last phase had done its work: a SIGTERM landing while Node exits (its handlers closed) can end it by the signal.
  const done = (o: Outcome): boolean => {
    const kind = o.action.slice("build ".length);
    return o.phase === "rooted" || (kind !== "top" && (o.phase === `built ${kind}` || o.phase === `cached ${kind}`));
  };
  for (const outcome of outcomes.filter((o) => o.fate === "SIGTERM" && o.action !== "gc" && o.code !== 0 && !(o.code === null && done(o)))) {
    assert.equal(outcome.code, 143, `${outcome.action} exited ${outcome.code} on SIGTERM, its last phase \`${outcome.phase}'`);
  }

  const store = new Store(root);
  const entries = readdirSync(root).filter((n) => /^[0-9a-f]{32}-/.test(n));
  let trusted = 0;
  for (const name of entries) {
    const kind = name.slice(33) as Kind;
    const generation = [...Array(generations).keys()].find((g) => hashOf(kind, g) === name.slice(0, 32));
    assert.ok(generation !== undefined, `unknown entry ${name}`);
    assert.ok(store.has(name.slice(0, 32), kind), `${name} is under its final name but not trusted`);
    assert.ok(whole(path.join(root, name), kind, generation), `${name} is trusted but not whole`);
    trusted++;
  }
  const leftovers = readdirSync(path.join(root, "tmp")).length;

  const final = await run(["gc"], "finished", 0);
  assert.equal(final.code, 0);
  assert.deepEqual(readdirSync(path.join(root, "tmp")), [], "the next gc cleared tmp/");
  assert.deepEqual(readdirSync(path.join(root, "locks")), [], "and locks/");

  for (let generation = 0; generation < generations; generation++) {
    const again = await run(["build", "top", String(generation), link], "finished", 0);
    assert.equal(again.code, 0);
    for (const kind of kinds) assert.ok(whole(store.pathOf(hashOf(kind, generation), kind), kind, generation), `${kind}-${generation} builds again`);
  }

  const count = (filter: (o: Outcome) => boolean) => outcomes.filter(filter).length;
  for (const action of ["build", "gc"]) {
    const of = (o: Outcome) => o.action.startsWith(action);
    t.diagnostic(`${action}: ${count(of)} runs — SIGKILL ${count((o) => of(o) && o.fate === "SIGKILL")}, SIGTERM ${count((o) => of(o) && o.fate === "SIGTERM")}, left to finish ${count((o) => of(o) && o.fate === "finished")}`);
  }
  const killedAt = new Map<string, number>();
  for (const o of outcomes.filter((o) => o.fate !== "finished" && o.code !== 0)) {
    const where = `${o.fate} ${o.action} at "${o.phase.replace(/ \d+$/, "")}"`;
    killedAt.set(where, (killedAt.get(where) ?? 0) + 1);
  }
  for (const [where, n] of [...killedAt].sort()) t.diagnostic(`${n}× ${where}`);
  t.diagnostic(`killed after finishing anyway: ${count((o) => o.fate !== "finished" && o.code === 0)}`);
  t.diagnostic(`afterwards: ${trusted} entries, all trusted and whole; ${leftovers} leftovers in tmp/, cleared by the next gc`);
});
