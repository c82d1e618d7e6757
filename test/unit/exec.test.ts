// The one way keel runs programs: failures become ProcessErrors with the
// command and the tail of the output; stopping a program stops its children.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { ProcessError } from "../../src/errors.ts";
import { exec } from "../../src/host/exec.ts";

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
    assert.equal(readFileSync(log, "utf8"), "$ sh -c 'echo one; echo two >&2; exit 3'\none\ntwo\n[exit 3]\n");
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
});
