// The store on a real directory with builders that write small files.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { appendFile, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { exec } from "../../src/host/exec.ts";
import { Store, storeDir } from "../../src/store/store.ts";

const lockModule = fileURLToPath(new URL("../../src/store/lock.ts", import.meta.url));

const scratch = mkdtempSync(path.join(os.tmpdir(), "keel-store-"));
after(() => rmSync(scratch, { recursive: true, force: true }));
let stores = 0;
const freshStore = () => new Store(path.join(scratch, `store-${++stores}`));
const hash = (c: string) => c.repeat(32);

const writer = (text: string, counter?: { runs: number }) => async (out: string, log: string) => {
  if (counter) counter.runs++;
  await appendFile(log, `writing ${text}\n`);
  await new Promise((resolve) => setTimeout(resolve, 50));
  await writeFile(path.join(out, "file"), text);
};

describe("store", () => {
  it("an output appears under <hash>-<name> only when its builder finished", async () => {
    const store = freshStore();
    const result = await store.build({ hash: hash("a"), name: "thing", references: [], build: writer("hello") });
    assert.equal(result.path, path.join(store.root, `${hash("a")}-thing`));
    assert.equal(result.built, true);
    assert.ok(result.bytes >= 5, "its size is measured");
    assert.equal((await store.build({ hash: hash("a"), name: "thing", references: [], build: writer("x") })).bytes, result.bytes, "and remembered");
    assert.equal(readFileSync(path.join(result.path, "file"), "utf8"), "hello");
    assert.deepEqual(readdirSync(path.join(store.root, "tmp")), []);
    assert.equal(readFileSync(store.logOf(hash("a"), "thing"), "utf8"), "writing hello\n");
  });

  it("an output in the store is not built again", async () => {
    const store = freshStore();
    const counter = { runs: 0 };
    await store.build({ hash: hash("b"), name: "x", references: [], build: writer("1", counter) });
    const again = await store.build({ hash: hash("b"), name: "x", references: [], build: writer("2", counter) });
    assert.equal(again.built, false);
    assert.equal(counter.runs, 1);
  });

  it("a failed builder leaves no entry and no temporary directory, and keeps its log", async () => {
    const store = freshStore();
    await assert.rejects(
      store.build({
        hash: hash("c"),
        name: "broken",
        references: [],
        build: async (out, log) => {
          await writeFile(path.join(out, "half"), "written");
          await appendFile(log, "about to fail\n");
          throw new Error("boom");
        },
      }),
      { message: "boom" },
    );
    assert.equal(store.has(hash("c"), "broken"), false);
    assert.deepEqual(readdirSync(path.join(store.root, "tmp")), []);
    assert.deepEqual(readdirSync(path.join(store.root, "locks")), ["store.lock"], "only the store's own lock, held shared by this process");
    assert.equal(readFileSync(store.logOf(hash("c"), "broken"), "utf8"), "about to fail\n");
  });

  it("two concurrent builds of one output build it once; the other waits and reuses it", async () => {
    const store = freshStore();
    const counter = { runs: 0 };
    const waited: number[] = [];
    const request = { hash: hash("d"), name: "shared", references: [], build: writer("once", counter), onWait: (pid: number) => waited.push(pid) };
    const [one, two] = await Promise.all([store.build(request), store.build(request)]);
    assert.equal(counter.runs, 1);
    assert.deepEqual([one.built, two.built].sort(), [false, true]);
    assert.deepEqual(waited, [process.pid]);
  });

  it("two steps sharing a workspace take turns in it, and it outlives them; a builder's note is returned", async () => {
    const store = freshStore();
    const inside: string[] = [];
    let overlapped = false;
    const user = (tag: string) => async (out: string, _log: string, workspace: string | undefined) => {
      if (inside.length > 0) overlapped = true;
      inside.push(tag);
      await appendFile(path.join(workspace as string, "history"), `${tag}\n`);
      await new Promise((resolve) => setTimeout(resolve, 50));
      await writeFile(path.join(out, "file"), tag);
      inside.pop();
      return `built ${tag}`;
    };
    const [one, two] = await Promise.all([
      store.build({ hash: hash("w"), name: "kernel", references: [], workspace: "kernel-x", build: user("one") }),
      store.build({ hash: hash("v"), name: "kernel", references: [], workspace: "kernel-x", build: user("two") }),
    ]);
    assert.equal(overlapped, false);
    assert.deepEqual([one.note, two.note], ["built one", "built two"]);
    assert.deepEqual(readFileSync(path.join(store.workspaceOf("kernel-x"), "history"), "utf8").split("\n").sort(), ["", "one", "two"]);
    assert.deepEqual(readdirSync(path.join(store.root, "locks")), ["store.lock"]);
    assert.equal((await store.build({ hash: hash("w"), name: "kernel", references: [], workspace: "kernel-x", build: user("three") })).note, undefined, "a cached output has no note");
  });

  it("a lock file left by a killed keel holds nothing: the next build goes ahead", async () => {
    const store = freshStore();
    await store.build({ hash: hash("0"), name: "warmup", references: [], build: writer("") });
    writeFileSync(path.join(store.root, "locks", `${hash("e")}-stale.lock`), "999999999\n");
    assert.equal((await store.build({ hash: hash("e"), name: "stale", references: [], build: writer("ok") })).built, true);
  });

  it("a lock another process holds is waited for, and that process is named", async () => {
    const store = freshStore();
    await store.build({ hash: hash("0"), name: "warmup", references: [], build: writer("") });
    const lock = path.join(store.root, "locks", `${hash("f")}-held.lock`);
    const holder = spawn(process.execPath, ["--import", "tsx", "-e", `const { FileLock } = await import(${JSON.stringify(lockModule)}); await FileLock.take(${JSON.stringify(lock)}, "exclusive"); console.log("held"); setTimeout(() => {}, 1000);`], { stdio: ["ignore", "pipe", "inherit"] });
    await new Promise((resolve) => holder.stdout.once("data", resolve));
    const waited: number[] = [];
    const building = store.build({ hash: hash("f"), name: "held", references: [], build: writer("late"), onWait: (pid) => waited.push(pid) });
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(store.has(hash("f"), "held"), false, "still waiting after 0.5 s");
    assert.deepEqual(waited, [holder.pid]);
    assert.equal((await building).built, true, "built once the holder has exited");
  });

  it("an existing store directory is made private; logs and metadata are its owner's only", async () => {
    const root = path.join(scratch, `open-store-${++stores}`);
    mkdirSync(root, { mode: 0o755 });
    const store = new Store(root);
    const result = await store.build({ hash: hash("p"), name: "private", references: [], build: writer("secret") });
    const mode = (file: string) => (statSync(file).mode & 0o777).toString(8);
    assert.deepEqual([mode(root), mode(result.path), mode(path.join(result.path, ".keel-step.json")), mode(store.logOf(hash("p"), "private"))], ["700", "700", "600", "600"]);
  });

  it("an entry without complete metadata is not trusted: it is moved aside and built again", async () => {
    const store = freshStore();
    const partial = store.pathOf(hash("9"), "half");
    mkdirSync(partial, { recursive: true });
    writeFileSync(path.join(partial, "file"), "half of it");
    writeFileSync(path.join(partial, ".keel-step.json"), '{"name": "half", "hash": ');
    assert.equal(store.has(hash("9"), "half"), false);
    const result = await store.build({ hash: hash("9"), name: "half", references: [], build: writer("whole") });
    assert.equal(result.built, true);
    assert.equal(readFileSync(path.join(partial, "file"), "utf8"), "whole");
    assert.equal(store.has(hash("9"), "half"), true);
    assert.deepEqual(readdirSync(path.join(store.root, "tmp")), []);
  });

  it("an output whose reference has gone is not trusted", async () => {
    const store = freshStore();
    const dep = await store.build({ hash: hash("7"), name: "dep", references: [], build: writer("dep") });
    await store.build({ hash: hash("8"), name: "top", references: [dep.path], build: writer("top") });
    rmSync(dep.path, { recursive: true });
    assert.equal(store.has(hash("8"), "top"), false);
  });

  it("gc waits for a running build, and a build started meanwhile waits for gc", async () => {
    const store = freshStore();
    const order: string[] = [];
    const building = store.build({
      hash: hash("4"),
      name: "slow",
      references: [],
      build: async (out) => {
        order.push("build started");
        await new Promise((resolve) => setTimeout(resolve, 400));
        await writeFile(path.join(out, "file"), "slow");
        order.push("build ended");
      },
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const gcWaited: number[] = [];
    const collecting = new Store(store.root).gc({ onWait: (pid) => gcWaited.push(pid) }).then((freed) => order.push(`gc freed ${freed.entries}`));
    await building;
    await store.close();
    await collecting;
    assert.deepEqual(order, ["build started", "build ended", "gc freed 1"]);
    assert.deepEqual(gcWaited, [process.pid]);
  });

  it("builds that start at once take the store's lock once: after close() gc does not wait", async () => {
    const store = freshStore();
    await Promise.all(["x", "y", "z"].map((n) => store.build({ hash: hash("6"), name: n, references: [], build: writer(n) })));
    await store.close();
    const waited: number[] = [];
    assert.equal((await new Store(store.root).gc({ onWait: (pid) => waited.push(pid) })).entries, 3);
    assert.deepEqual(waited, []);
  });

  it("a failed step's programs are stopped and waited for before its directory and locks go", async () => {
    const store = freshStore();
    let sleeper = 0;
    await assert.rejects(
      store.build({
        hash: hash("5"),
        name: "sibling",
        references: [],
        build: async () => {
          const sleeping = exec(["sh", "-c", "echo $$; exec sleep 30"], { onOutput: (text) => (sleeper = Number(text)) });
          await new Promise((resolve) => setTimeout(resolve, 300));
          await Promise.all([sleeping, Promise.reject(new Error("boom"))]);
        },
      }),
      { message: "boom" },
    );
    assert.ok(sleeper > 0);
    assert.throws(() => process.kill(sleeper, 0), { code: "ESRCH" }, "sleep 30 was stopped before the build returned");
    assert.deepEqual(readdirSync(path.join(store.root, "tmp")), []);
  });

  it("gc keeps what a live result link reaches, with its references, and frees the rest", async () => {
    const store = freshStore();
    const dep = await store.build({ hash: hash("1"), name: "dep", references: [], build: writer("dependency") });
    const top = await store.build({ hash: hash("2"), name: "top", references: [dep.path], build: writer("top") });
    const loose = await store.build({ hash: hash("3"), name: "loose", references: [], build: writer("12345") });
    const link = path.join(scratch, `result-${stores}`);
    await store.addRoot(link, top.path);
    const first = await store.gc();
    assert.equal(first.entries, 1);
    assert.ok(first.bytes >= 5, `freed ${first.bytes} bytes`);
    assert.deepEqual([existsSync(dep.path), existsSync(top.path), existsSync(loose.path)], [true, true, false]);
    rmSync(link);
    const second = await store.gc();
    assert.equal(second.entries, 2);
    assert.deepEqual([existsSync(dep.path), existsSync(top.path)], [false, false]);
  });

  it("gc removes half-done .deb downloads a killed build left, and keeps the checked .debs", async () => {
    const store = freshStore();
    await store.build({ hash: hash("4"), name: "any", references: [], build: writer("x") });
    const debs = path.join(store.root, "debs");
    mkdirSync(debs);
    const checked = path.join(debs, `${"a".repeat(64)}.deb`);
    writeFileSync(checked, "deb");
    writeFileSync(`${checked}.4242.0badcafe.part`, "half");
    writeFileSync(path.join(debs, `${"a".repeat(64)}.control.4242.0badcafe.tmp`), "Package: x");
    await store.gc();
    assert.deepEqual(readdirSync(debs), [path.basename(checked)]);
  });

  it("the store directory: --store, else KEEL_STORE, else the XDG cache", () => {
    assert.equal(storeDir({ XDG_CACHE_HOME: "/c" }, "s", "/w"), "/w/s");
    assert.equal(storeDir({ XDG_CACHE_HOME: "/c", KEEL_STORE: "/k" }, undefined, "/w"), "/k");
    assert.equal(storeDir({ XDG_CACHE_HOME: "/c" }, undefined, "/w"), "/c/keel/store");
  });
});
