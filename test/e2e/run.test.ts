// keel run end to end, under TCG: the seed's qemu system with a shared
// directory, the test's own SSH key and a free loopback port boots and answers
// SSH; its disk keeps what the guest wrote until --reset; a kernel that panics
// is reported with its console. Each VM is stopped by the test.
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { freePort, keelIn } from "./processes.ts";
import { writeSeedLock } from "./seed-lock.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));
const scratch = mkdtempSync(path.join(os.tmpdir(), "keel-run-"));
const store = path.join(scratch, "store");
const env = { ...process.env, XDG_CACHE_HOME: path.join(scratch, "cache"), XDG_STATE_HOME: path.join(scratch, "state"), KEEL_STORE: store };
const keel = keelIn(env);

/** A project in `dirName` with one system `vmtest`: the seed's qemu, forwarding `port`, sharing `shared`, authorizing `key`, plus `extra`. */
function project(dirName: string, port: number, shared: string, key: string, extra = ""): string {
  const name = "vmtest";
  const dir = path.join(scratch, dirName);
  mkdirSync(path.join(dir, "node_modules"), { recursive: true });
  symlinkSync(root, path.join(dir, "node_modules/keel"));
  writeFileSync(
    path.join(dir, "keel.config.ts"),
    `import { defineModule, defineProject, mkForce } from "keel";\n` +
      `import qemu from ${JSON.stringify(path.join(root, "examples/seed/qemu.ts"))};\n` +
      `const ${name} = defineModule({ imports: [qemu],\n` +
      `  virtualisation: { forwardPorts: mkForce([{ host: { port: ${port} }, guest: { port: 22 } }]),\n` +
      `    sharedDirectories: { data: { source: ${JSON.stringify(shared)}, target: "/mnt/data", readOnly: true } } },\n` +
      `  users: { users: { root: { openssh: { authorizedKeys: { keys: [${JSON.stringify(key)}] } } } } },\n` +
      `  ${extra}\n});\n` +
      `export default defineProject({ systems: { ${name} } });\n`,
  );
  writeSeedLock(dir, name);
  return dir;
}

describe("keel run", () => {
  let port: number;
  let dir: string;
  let userKey: string;
  const shared = path.join(scratch, "shared");

  before(async () => {
    port = await freePort();
    mkdirSync(shared);
    writeFileSync(path.join(shared, "marker"), "from the host\n");
    userKey = path.join(scratch, "user_key");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", userKey]);
    dir = project("vmtest", port, shared, readFileSync(`${userKey}.pub`, "utf8").trim());
  });

  after(async () => {
    for (const project of ["vmtest", "panics"]) await keel(["vm", "stop", "vmtest", "--force"], path.join(scratch, project));
    rmSync(scratch, { recursive: true, force: true });
  });

  test("boots the seed's qemu system; keel ssh runs a command in it; the kernel is the built one", async () => {
    const run = await keel(["run", "vmtest", "--detach", "--wait-ssh", "--timeout", "240"], dir);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, new RegExp(`answers SSH on 127\\.0\\.0\\.1:${port} after [\\d.]+ s`));
    console.log(`# keel run --detach --wait-ssh: ${run.seconds.toFixed(1)} s`);
    const systemDir = readdirSync(store).find((name) => name.endsWith("-system-vmtest")) ?? "";
    const { release } = JSON.parse(readFileSync(path.join(store, systemDir, "boot.json"), "utf8")) as { release: string };
    const uname = await keel(["ssh", "vmtest", "--", "uname", "-r"], dir);
    assert.equal(uname.code, 0, uname.stderr);
    assert.equal(uname.stdout, `${release}\n`);
    const quoted = await keel(["ssh", "vmtest", "--", "printf", "%s|", "a b", "it's", "$HOME", "x;y", ""], dir);
    assert.equal(quoted.stdout, "a b|it's|$HOME|x;y||", "each argument arrives as given");
    console.log(`# keel ssh -- printf, sharing the first login: ${quoted.seconds.toFixed(2)} s`);
    const gc = await keel(["gc"], dir);
    assert.equal(gc.code, 0, gc.stderr);
    const imageDir = readdirSync(store).find((name) => name.endsWith("-image-vmtest")) ?? "";
    assert.ok(existsSync(path.join(store, imageDir, "rootfs.img")), "keel gc keeps what a VM boots");
    const build = await keel(["build", "vmtest", "--dry-run"], dir);
    assert.equal(build.code, 0, build.stderr);
    assert.doesNotMatch(build.stdout, /to build/, "keel build after keel run builds nothing: the VM variant shares the system's steps");
    const list = await keel(["vm", "list"], dir);
    assert.match(list.stdout, new RegExp(`^vmtest +pid \\d+ +ssh 127\\.0\\.0\\.1:${port} `, "m"));
  });

  test("plain ssh -p <port> localhost works with the user's own key from the config", () => {
    const out = execFileSync(
      "ssh",
      ["-i", userKey, "-p", String(port), "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "root@localhost", "hostname"],
      { encoding: "utf8", env },
    );
    assert.equal(out, "vmtest\n", "the host name defaults to the system's name");
  });

  test("the guest's host key is pinned in the VM's known_hosts", () => {
    const states = path.join(scratch, "state/keel/projects");
    const [projectId = ""] = readdirSync(states);
    const knownHosts = readFileSync(path.join(states, projectId, "vms/vmtest/known_hosts"), "utf8");
    assert.match(knownHosts, /^keel-vm-vmtest ssh-ed25519 /m);
  });

  test("the shared host directory is mounted read-only in the guest", async () => {
    const read = await keel(["ssh", "vmtest", "--", "cat", "/mnt/data/marker"], dir);
    assert.equal(read.stdout, "from the host\n", read.stderr);
    const write = await keel(["ssh", "vmtest", "--", "touch", "/mnt/data/new"], dir);
    assert.notEqual(write.code, 0);
    assert.match(write.stderr, /Read-only file system/);
  });

  test("the forwarded port listens on loopback only: unreachable from another host", () => {
    const listening = execFileSync("ss", ["-Hltn", `sport = :${port}`], { encoding: "utf8" });
    assert.match(listening, new RegExp(`127\\.0\\.0\\.1:${port}\\b`));
    // A second host: a network namespace joined to this one by a veth pair.
    const ns = `keel-test-${process.pid}`;
    const hostSide = `kt${process.pid % 100000}`;
    try {
      execFileSync("ip", ["netns", "add", ns]);
      execFileSync("ip", ["link", "add", hostSide, "type", "veth", "peer", "name", "eth0", "netns", ns]);
      execFileSync("ip", ["addr", "add", "10.231.0.1/30", "dev", hostSide]);
      execFileSync("ip", ["link", "set", hostSide, "up"]);
      execFileSync("ip", ["-n", ns, "addr", "add", "10.231.0.2/30", "dev", "eth0"]);
      execFileSync("ip", ["-n", ns, "link", "set", "eth0", "up"]);
      const probe = `require("net").connect(${port}, "10.231.0.1").on("connect", () => { console.log("connected"); process.exit(0); }).on("error", (e) => { console.log(e.code); process.exit(0); })`;
      const answer = execFileSync("ip", ["netns", "exec", ns, process.execPath, "-e", probe], { encoding: "utf8", timeout: 15_000 }).trim();
      assert.equal(answer, "ECONNREFUSED");
    } finally {
      execFileSync("ip", ["link", "del", hostSide], { stdio: "ignore" });
      execFileSync("ip", ["netns", "del", ns], { stdio: "ignore" });
    }
  });

  test("what the guest writes survives a restart, and is gone after --reset", async () => {
    const write = await keel(["ssh", "vmtest", "--", "sh", "-c", "echo kept > /root/note && sync"], dir);
    assert.equal(write.code, 0, write.stderr);
    const stop = await keel(["vm", "stop", "vmtest"], dir);
    assert.equal(stop.code, 0, stop.stderr);
    assert.match(stop.stderr, /stopped \(powered off\)/);
    const again = await keel(["run", "vmtest", "--detach", "--wait-ssh", "--timeout", "240"], dir);
    assert.equal(again.code, 0, again.stderr);
    assert.equal((await keel(["ssh", "vmtest", "--", "cat", "/root/note"], dir)).stdout, "kept\n");
    assert.equal((await keel(["vm", "stop", "vmtest", "--force"], dir)).code, 0);
    const reset = await keel(["run", "vmtest", "--detach", "--wait-ssh", "--reset", "--timeout", "240"], dir);
    assert.equal(reset.code, 0, reset.stderr);
    const gone = await keel(["ssh", "vmtest", "--", "test", "-e", "/root/note"], dir);
    assert.equal(gone.code, 1, `after --reset the file is gone (and the new host key is accepted): ${gone.stderr}`);
  });

  test("a rebuilt system is what the VM runs after a restart: its new package is installed, /var/lib and /home are kept, a file written in /etc is gone", async () => {
    assert.equal((await keel(["vm", "stop", "vmtest", "--force"], dir)).code, 0);
    assert.equal((await keel(["run", "vmtest", "--detach", "--wait-ssh", "--timeout", "240"], dir)).code, 0);
    const write = await keel(["ssh", "vmtest", "--", "sh", "-c", "mkdir -p /var/lib/app && echo state > /var/lib/app/data && echo mine > /home/brendan/notes && echo edited > /etc/written-here && sync"], dir);
    assert.equal(write.code, 0, write.stderr);
    assert.equal((await keel(["vm", "stop", "vmtest"], dir)).code, 0);
    // The config gains a package: keel lock pins it, keel run builds the new generation and boots it on the same VM disk.
    const config = path.join(dir, "keel.config.ts");
    writeFileSync(config, readFileSync(config, "utf8").replace("defineModule({ imports: [qemu],", 'defineModule({ imports: [qemu], packages: ["tree"],'));
    const lock = await keel(["lock"], dir);
    assert.equal(lock.code, 0, lock.stderr);
    const again = await keel(["run", "vmtest", "--detach", "--wait-ssh", "--timeout", "240"], dir);
    assert.equal(again.code, 0, again.stderr);
    const look = await keel(["ssh", "vmtest", "--", "sh", "-c", "dpkg-query -W -f '${Status}' tree; echo; cat /var/lib/app/data /home/brendan/notes; test -e /etc/written-here && echo etc-kept || echo etc-gone"], dir);
    assert.equal(look.code, 0, look.stderr);
    assert.equal(look.stdout, "install ok installed\nstate\nmine\netc-gone\n");
  });

  test("--ephemeral: what the guest writes in such a run is gone at the next", async () => {
    assert.equal((await keel(["vm", "stop", "vmtest", "--force"], dir)).code, 0);
    const ephemeral = await keel(["run", "vmtest", "--detach", "--wait-ssh", "--ephemeral", "--timeout", "240"], dir);
    assert.equal(ephemeral.code, 0, ephemeral.stderr);
    assert.equal((await keel(["ssh", "vmtest", "--", "sh", "-c", "echo lost > /root/scratch && sync"], dir)).code, 0);
    assert.equal((await keel(["vm", "stop", "vmtest"], dir)).code, 0);
    const again = await keel(["run", "vmtest", "--detach", "--wait-ssh", "--timeout", "240"], dir);
    assert.equal(again.code, 0, again.stderr);
    assert.equal((await keel(["ssh", "vmtest", "--", "test", "-e", "/root/scratch"], dir)).code, 1);
  });

  test("keel vm console shows the serial console and Ctrl-] detaches, leaving the VM running", async () => {
    const console = spawn(process.execPath, [path.join(root, "bin/keel.js"), "vm", "console", "vmtest"], { cwd: dir, env, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    console.stdout.on("data", (chunk: Buffer) => (stdout += chunk));
    console.stderr.on("data", (chunk: Buffer) => (stderr += chunk));
    const closed = new Promise<number | null>((resolve) => console.on("close", resolve));
    await new Promise((resolve) => setTimeout(resolve, 1000));
    console.stdin.write("\n");
    await new Promise((resolve) => setTimeout(resolve, 3000));
    console.stdin.write("\x1d");
    assert.equal(await closed, 0, stderr);
    assert.match(stdout, /vmtest login: /);
    assert.match(stderr, /detached; the VM keeps running/);
    assert.match((await keel(["vm", "list"], dir)).stdout, /^vmtest /m);
  });

  test("a kernel that panics is reported as failed, with its console, before the timeout", async () => {
    // rdinit= names no program: the kernel cannot start stage 1 and panics. Only the
    // kernel command line differs from the first project's system, so its root file system is reused.
    const panics = project("panics", await freePort(), shared, readFileSync(`${userKey}.pub`, "utf8").trim(), 'boot: { kernelParams: ["rdinit=/nonexistent"] },');
    const run = await keel(["run", "vmtest", "--detach", "--wait-ssh", "--timeout", "240"], panics);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /error: The VM `vmtest' failed to boot \(its kernel panicked or stage 1 gave up\)\. The last lines of its console:/);
    assert.match(run.stderr, /Kernel panic - not syncing/);
    assert.ok(run.seconds < 240, `reported after ${run.seconds.toFixed(0)} s, not at the timeout`);
    assert.match(run.stderr, /rootfs: cached/);
    assert.match((await keel(["vm", "stop", "vmtest"], panics)).stderr, /The VM `vmtest' is not running\./, "the failed VM is stopped already");
  });
});
