// The one way keel runs programs: failures become ProcessErrors with the
// command and the tail of the output; stopping a program stops its children.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawn } from "node:child_process";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { ProcessError } from "../../src/errors.ts";
import { exec, stillRunning, ToolScope } from "../../src/host/exec.ts";
import { groupMembers } from "../../src/host/processes.ts";

const execModule = fileURLToPath(new URL("../../src/host/exec.ts", import.meta.url));

const scratch = mkdtempSync(path.join(os.tmpdir(), "keel-exec-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

describe("exec", () => {
  it("a failing program: its command line, exit code and last lines, and the log kept", async () => {
    const log = path.join(scratch, "fail.log");
    await assert.rejects(exec(["sh", "-c", "echo one; echo two >&2; exit 3"], { log }), (error: unknown) => {
      assert.ok(error instanceof ProcessError);
      assert.equal(error.message, `"sh -c 'echo one; echo two >&2; exit 3'" returned non-zero exit code 3.\nIts last lines of output:\n  one\n  two`);
      assert.equal(error.exitCode, 3);
      assert.equal(error.logPath, log);
      return true;
    });
    assert.match(readFileSync(log, "utf8"), /^\$ sh -c 'echo one; echo two >&2; exit 3'\none\ntwo\n\[exit 3 after \d+\.\d s\]\n$/);
  });

  it("a missing program is named, with where to find it, also when logging", async () => {
    await assert.rejects(exec(["no-such-program-for-keel"], { log: path.join(scratch, "missing.log") }), {
      message: '"no-such-program-for-keel" was not found.\nFix: install it (`keel doctor` names the Debian package).',
    });
  });

  it("a timeout stops the program's children too", async () => {
    const started = performance.now();
    const result = await exec(["sh", "-c", "sleep 5 & sleep 5"], { timeout: 300, nothrow: true });
    assert.equal(result.timedOut, true);
    assert.ok(performance.now() - started < 3000, "returned without waiting for the background sleep");
  });

  it("a stopped program says why it was stopped", async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort("another step failed"), 200);
    await assert.rejects(exec(["sleep", "5"], { signal: controller.signal }), { message: '"sleep 5" was stopped because another step failed.' });
  });

  it("stopWhen ends a probe as soon as it has its answer", async () => {
    const started = performance.now();
    const result = await exec(["sh", "-c", "echo ready; sleep 5"], { stopWhen: /ready/ });
    assert.equal(result.stopped, true);
    assert.ok(performance.now() - started < 3000);
  });

  it("a stopped program that ignores SIGTERM gets SIGKILL after the grace period; exec returns when its whole group is gone", async () => {
    const controller = new AbortController();
    let group = 0;
    const running = exec(["sh", "-c", 'trap "" TERM; echo $$; sleep 30 & wait'], { signal: controller.signal, grace: 400, onOutput: (text) => (group = Number(text)) });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const stopped = performance.now();
    controller.abort("a test stopped it");
    await assert.rejects(running, { message: `"sh -c 'trap "" TERM; echo $$; sleep 30 & wait'" was stopped because a test stopped it.` });
    const waited = performance.now() - stopped;
    assert.ok(waited >= 400 && waited < 3000, `returned ${Math.round(waited)} ms after the stop`);
    assert.deepEqual(groupMembers(group), []);
  });

  it("a step's program leaves a child behind: it is stopped and waited for, and stillRunning names both", async () => {
    const scope = new ToolScope("thing-x", []);
    let seen: string[] = [];
    const started = performance.now();
    await scope.run(async () => {
      const result = exec(["sh", "-c", 'trap "" TERM; sleep 30 >/dev/null 2>&1 & echo started'], { grace: 500 });
      await new Promise((resolve) => setTimeout(resolve, 250));
      seen = stillRunning();
      await result;
    });
    assert.ok(performance.now() - started >= 500, "the child was waited for");
    assert.equal(seen.length, 1);
    assert.match(seen[0] as string, /^thing-x: sh -c 'trap "" TERM; sleep 30 >\/dev\/null 2>&1 & echo started' \(pid \d+\), and in its process group sleep \(pid \d+\)$/);
    assert.deepEqual(stillRunning(), []);
  });

  it("a program dies with keel, even when keel is killed with SIGKILL", async () => {
    const script = `const { exec } = await import(${JSON.stringify(execModule)}); await exec(["sh", "-c", "echo $$; exec sleep 30"], { onOutput: (t) => console.log(t.trim()) });`;
    const keel = spawn(process.execPath, ["--import", "tsx", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
    const pid = await new Promise<number>((resolve) => keel.stdout.once("data", (chunk: Buffer) => resolve(Number(chunk.toString()))));
    keel.kill("SIGKILL");
    const deadline = performance.now() + 2000;
    while (groupMembers(pid).length > 0 && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(groupMembers(pid), [], "sleep 30 died with keel");
  });
});
