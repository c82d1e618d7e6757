// Inputs and keel.lock: what `keel lock` and `keel update` pin, when a lock
// entry is stale, and the source step refusing bytes that are not the pinned ones.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { buildSource } from "../../src/steps/source.ts";
import { lockMatches, pinned, readLock } from "../../src/inputs/lock.ts";
import { relock } from "../../src/inputs/resolve.ts";
import type { InputSpec } from "../../src/inputs/spec.ts";

const scratch = mkdtempSync(path.join(os.tmpdir(), "keel-inputs-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** A directory that looks like a kernel tree, packed as linux-x/ in a tarball. */
function tarball(name: string, content: string): string {
  const tree = path.join(scratch, `${name}-tree`, "linux-x");
  mkdirSync(tree, { recursive: true });
  writeFileSync(path.join(tree, "Makefile"), content);
  writeFileSync(path.join(tree, "Kconfig"), "");
  const file = path.join(scratch, `${name}.tar.gz`);
  execFileSync("tar", ["-czf", file, "-C", path.dirname(tree), "linux-x"]);
  return file;
}

function project(name: string, inputs: Record<string, InputSpec>) {
  const dir = path.join(scratch, name);
  mkdirSync(dir, { recursive: true });
  return { file: path.join(dir, "keel.config.ts"), inputs };
}

const context = () => ({ log: path.join(scratch, "build.log"), debs: path.join(scratch, "debs"), env: process.env, signal: new AbortController().signal });

describe("keel.lock", () => {
  it("an entry matches while keel.config.ts asks for the same thing", () => {
    const locked = { type: "debian-source", package: "linux-source-6.1", version: "6.1.192-2", url: "http://x/y.deb", sha256: "a".repeat(64) } as const;
    assert.equal(lockMatches({ type: "debian-source", package: "linux-source-6.1" }, locked), true);
    assert.equal(lockMatches({ type: "debian-source", package: "linux-source-6.1", version: "6.1.192-2" }, locked), true);
    assert.equal(lockMatches({ type: "debian-source", package: "linux-source-6.1", version: "6.1.170-3" }, locked), false);
    assert.equal(lockMatches({ type: "debian-source", package: "linux-source-6.12" }, locked), false);
    assert.equal(lockMatches({ type: "tarball", url: "http://x/y.deb" }, locked), false);
    assert.equal(lockMatches({ type: "path", path: "/src/linux" }, undefined), false);
  });

  it("a lock file that is not valid names itself and the fix", () => {
    const file = path.join(scratch, "bad.lock");
    writeFileSync(file, JSON.stringify({ version: 1, inputs: { linux: { type: "git", url: "u", ref: "main", commit: "abc" } } }));
    assert.throws(() => readLock(file), {
      message: `\`${file}' is not a valid keel.lock:\n- inputs.linux.commit: a 40-digit commit id\nFix: restore it from version control, or delete it and run \`keel lock\`.`,
    });
  });

  it("keel lock pins a tarball's sha256, and leaves a pinned input alone", async () => {
    const file = tarball("one", "v1\n");
    const p = project("lock", { linux: { type: "tarball", url: file } });
    const changes = await relock(p, "missing");
    const sha = execFileSync("sha256sum", [file], { encoding: "utf8" }).split(" ")[0];
    assert.deepEqual(changes.map((c) => [c.name, c.after]), [["linux", { type: "tarball", url: file, sha256: sha }]]);
    assert.deepEqual(JSON.parse(readFileSync(path.join(path.dirname(p.file), "keel.lock"), "utf8")), { version: 1, inputs: { linux: { type: "tarball", url: file, sha256: sha } } });
    assert.deepEqual(await relock(p, "missing"), []);
  });

  it("a changed tarball is refused with both hashes until keel update pins it anew", async () => {
    const file = tarball("two", "v1\n");
    const p = project("update", { linux: { type: "tarball", url: file } });
    const [first] = await relock(p, "missing");
    const lockFile = path.join(path.dirname(p.file), "keel.lock");
    tarball("two", "v2\n");
    const now = execFileSync("sha256sum", [file], { encoding: "utf8" }).split(" ")[0];
    const locked = pinned("linux", p.inputs.linux as InputSpec, readLock(lockFile), lockFile);
    const out = path.join(scratch, "two-out");
    mkdirSync(out);
    await assert.rejects(buildSource(context(), out, { input: "linux", locked, location: file }), {
      message:
        `The input \`linux' (${file}) has sha256 ${now}, but keel.lock pins ${first?.after.type === "tarball" ? first.after.sha256 : ""}.\n` +
        "Fix: if the new content is expected, run `keel update linux`; otherwise the source changed under you or the download was corrupted.",
    });
    assert.equal(existsSync(path.join(out, ".work", "source.tar")), false, "the refused download is not left behind");
    const [updated] = await relock(p, ["linux"]);
    assert.equal(updated?.after.type === "tarball" && updated.after.sha256, now);
    const fresh = path.join(scratch, "two-fresh");
    mkdirSync(fresh);
    await buildSource(context(), fresh, { input: "linux", locked: pinned("linux", p.inputs.linux as InputSpec, readLock(lockFile), lockFile), location: file });
    assert.equal(readFileSync(path.join(fresh, "Makefile"), "utf8"), "v2\n", "the tree is unpacked without its top directory");
  });

  it("a sha256 in keel.config.ts that differs from the lock makes the entry stale", async () => {
    const file = tarball("three", "v1\n");
    const p = project("stale", { linux: { type: "tarball", url: file } });
    await relock(p, "missing");
    const lockFile = path.join(path.dirname(p.file), "keel.lock");
    const spec: InputSpec = { type: "tarball", url: file, sha256: "0".repeat(64) };
    assert.throws(() => pinned("linux", spec, readLock(lockFile), lockFile), /^ConfigError: The input `linux' is not pinned: `.*keel\.lock' pins .* \(sha256 [0-9a-f]{12}…\), which is not what keel\.config\.ts now asks for\.\nFix: run `keel lock`/);
  });

  it("git: a branch is pinned to its commit, and the source step checks that commit out", async () => {
    const repo = path.join(scratch, "repo");
    mkdirSync(repo);
    const git = (...args: string[]) => execFileSync("git", ["-C", repo, "-c", "user.name=t", "-c", "user.email=t@t", ...args], { encoding: "utf8" }).trim();
    git("init", "-q", "-b", "main");
    writeFileSync(path.join(repo, "Makefile"), "first\n");
    writeFileSync(path.join(repo, "Kconfig"), "");
    git("add", ".");
    git("commit", "-q", "-m", "first");
    const first = git("rev-parse", "HEAD");
    const p = project("git", { linux: { type: "git", url: repo, ref: "main" } });
    const [change] = await relock(p, "missing");
    assert.deepEqual(change?.after, { type: "git", url: repo, ref: "main", commit: first });
    writeFileSync(path.join(repo, "Makefile"), "second\n");
    git("commit", "-q", "-am", "second");
    const out = path.join(scratch, "git-out");
    mkdirSync(out);
    await buildSource(context(), out, { input: "linux", locked: change?.after as never, location: repo });
    assert.equal(readFileSync(path.join(out, "Makefile"), "utf8"), "first\n", "the pinned commit, not the branch's newest");
    const [updated] = await relock(p, ["linux"]);
    assert.equal(updated?.after.type === "git" && updated.after.commit, git("rev-parse", "HEAD"));
  });

  it("pinning an input keeps the systems' pinned Debian packages", async () => {
    const file = tarball("four", "v1\n");
    const p = project("systems", { linux: { type: "tarball", url: file } });
    const lockFile = path.join(path.dirname(p.file), "keel.lock");
    const debian = { suite: "bookworm", components: ["main"], arch: "amd64", date: "D", request: ["less"], packages: { less: { version: "590-2.1~deb12u2", sha256: "b".repeat(64), size: 1, filename: "pool/main/l/less/less.deb" } } };
    writeFileSync(lockFile, JSON.stringify({ version: 1, inputs: {}, systems: { qemu: { debian } } }));
    await relock(p, "missing");
    assert.deepEqual(readLock(lockFile).systems, { qemu: { debian } });
  });

  it("path inputs are not pinned; an unknown input is a usage error", async () => {
    const p = project("path", { linux: { type: "path", path: "../linux" } });
    assert.deepEqual(await relock(p, "missing"), []);
    await assert.rejects(relock(p, ["linx"]), { message: `The project has no input \`linx'. Its inputs: linux.\nFix: name one of those (see \`inputs\` in ${p.file}).` });
  });
});
