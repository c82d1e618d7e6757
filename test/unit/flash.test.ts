// keel flash's pure parts: which blocks of an image a file gets (the rest stay
// holes), and how a write's progress reads on a terminal and in a log.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { progressReporter } from "../../src/cli/flash.ts";
import { dataRuns } from "../../src/image/flash.ts";

describe("the blocks of an image a file gets", () => {
  it("runs of blocks with data, merged; whole blocks of zeros skipped", () => {
    const chunk = Buffer.alloc(6 * 4096);
    chunk[5] = 1; // block 0
    chunk[4096 + 4095] = 1; // block 1, its last byte
    chunk[4 * 4096] = 1; // block 4
    assert.deepEqual(dataRuns(chunk), [
      [0, 2 * 4096],
      [4 * 4096, 5 * 4096],
    ]);
  });

  it("all zeros is all holes; a short last block with data is written", () => {
    assert.deepEqual(dataRuns(Buffer.alloc(3 * 4096)), []);
    const chunk = Buffer.alloc(4096 + 100);
    chunk[4096 + 99] = 7;
    assert.deepEqual(dataRuns(chunk), [[4096, 4196]]);
  });
});

describe("a write's progress", () => {
  const mib = 1024 * 1024;
  const capture = (interactive: boolean) => {
    let text = "";
    return { out: { stdout: () => undefined, stderr: (t: string) => (text += t), interactive }, text: () => text };
  };

  it("in a log: a line as each phase starts and ends, with bytes, percent and rate", () => {
    const { out, text } = capture(false);
    const progress = progressReporter(out, "/dev/sdb");
    progress.update({ phase: "writing", bytes: 4 * mib, total: 16 * mib, seconds: 0.5 });
    progress.update({ phase: "writing", bytes: 8 * mib, total: 16 * mib, seconds: 1 });
    progress.update({ phase: "writing", bytes: 16 * mib, total: 16 * mib, seconds: 2 });
    progress.update({ phase: "verifying", bytes: 16 * mib, total: 16 * mib, seconds: 1 });
    progress.close();
    assert.equal(
      text(),
      "writing /dev/sdb: 4.0 MiB of 16.0 MiB (25%), 8.0 MiB/s\n" +
        "writing /dev/sdb: 16.0 MiB of 16.0 MiB (100%), 8.0 MiB/s\n" +
        "verifying /dev/sdb: 16.0 MiB of 16.0 MiB (100%), 16.0 MiB/s\n",
    );
  });

  it("on a terminal: one line redrawn in place, a new line for the next phase", () => {
    const { out, text } = capture(true);
    const progress = progressReporter(out, "disk.img");
    progress.update({ phase: "writing", bytes: 16 * mib, total: 16 * mib, seconds: 2 });
    progress.update({ phase: "verifying", bytes: 16 * mib, total: 16 * mib, seconds: 1 });
    progress.close();
    assert.equal(text(), "\r\x1b[2Kwriting disk.img: 16.0 MiB of 16.0 MiB (100%), 8.0 MiB/s\n\r\x1b[2Kverifying disk.img: 16.0 MiB of 16.0 MiB (100%), 16.0 MiB/s\n");
  });
});
