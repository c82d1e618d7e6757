// keel build end to end: real mmdebstrap, Debian's kernel package, a real
// initrd, Debian pinned in keel.lock. Systems differ from the seed's qemu by
// a package (each pinned with `keel lock`), so each test builds its own root
// filesystem while the kernel is built once.
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { writeSeedLock } from "./seed-lock.ts";
import type { BuildEvent } from "../../src/steps/realize.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));
const scratch = mkdtempSync(path.join(os.tmpdir(), "keel-build-"));
chmodSync(scratch, 0o755);
const store = path.join(scratch, "store");
const env = { ...process.env, XDG_CACHE_HOME: path.join(scratch, "cache"), KEEL_STORE: store };
const seed = path.join(root, "examples/seed");

after(() => rmSync(scratch, { recursive: true, force: true }));

interface Run {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly events: BuildEvent[];
}

/** Runs keel; `onEvent` sees --json events as they come and may stop the process. */
function keel(args: readonly string[], cwd: string, options: { onEvent?: (e: BuildEvent, stop: () => void) => void; user?: string; keelRoot?: string } = {}): Promise<Run> {
  const bin = path.join(options.keelRoot ?? root, "bin/keel.js");
  const argv = options.user
    ? ["runuser", "-u", options.user, "--", "env", `HOME=${scratch}/home-${options.user}`, process.execPath, bin, ...args]
    : [process.execPath, bin, ...args];
  return new Promise((resolve) => {
    // A group of its own, as a terminal would give it: nothing keel runs can signal the test runner.
    const child = spawn(argv[0] as string, argv.slice(1), { cwd, env: options.user ? { PATH: process.env.PATH } : env, detached: true });
    let stdout = "";
    let stderr = "";
    let pending = "";
    const events: BuildEvent[] = [];
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk;
      pending += chunk;
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) {
        if (!line.startsWith("{")) continue;
        const event = JSON.parse(line) as BuildEvent;
        events.push(event);
        options.onEvent?.(event, () => child.kill("SIGTERM"));
      }
    });
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk));
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr, events }));
  });
}

/**
 * A project whose one system is the seed's qemu plus `packages` and `more`
 * definitions, its Debian packages pinned by `keel lock` unless `lock` is false.
 */
function variant(name: string, packages: readonly string[], options: { keelRoot?: string; more?: string; lock?: boolean } = {}): string {
  const keelRoot = options.keelRoot ?? root;
  const dir = path.join(scratch, name);
  mkdirSync(path.join(dir, "node_modules"), { recursive: true });
  symlinkSync(keelRoot, path.join(dir, "node_modules/keel"));
  writeFileSync(
    path.join(dir, "keel.config.ts"),
    `import { defineModule, defineProject } from "keel";\nimport qemu from ${JSON.stringify(path.join(keelRoot, "examples/seed/qemu.ts"))};\n` +
      `const ${name} = defineModule({ imports: [qemu], packages: ${JSON.stringify(packages)}${options.more ? `, ${options.more}` : ""} });\n` +
      `export default defineProject({ systems: { ${name} } });\n`,
  );
  chmodSync(dir, 0o755);
  if (options.lock !== false) execFileSync(process.execPath, [path.join(root, "bin/keel.js"), "lock"], { cwd: dir, env, stdio: "ignore" });
  return dir;
}

const tarList = (tarball: string): string[] => execFileSync("tar", ["-tf", tarball], { encoding: "utf8", maxBuffer: 64 << 20 }).split("\n");
const tarRead = (tarball: string, member: string): string => execFileSync("tar", ["-xOf", tarball, member], { encoding: "utf8" });

function stepPath(run: Run, step: string): string {
  const plan = run.events.find((e) => e.type === "plan");
  const found = plan?.type === "plan" ? plan.steps.find((s) => s.step === step) : undefined;
  assert.ok(found, `the plan has a ${step} step`);
  return found.path;
}

describe("keel build", () => {
  let cold: Run;

  before(async () => {
    cold = await keel(["build", "qemu", "--json", "--no-link"], seed);
  });

  test("the seed's qemu system builds: kernel, initrd, root filesystem and system", () => {
    assert.equal(cold.code, 0, cold.stderr);
    const plan = cold.events[0];
    assert.equal(plan?.type, "plan");
    assert.deepEqual(plan?.type === "plan" ? plan.steps.map((s) => [s.step, s.cached]) : [], [
      ["kernel", false], ["initrd", false], ["rootfs", false], ["system", false],
    ]);
    const summary = cold.events.at(-1);
    assert.equal(summary?.type === "summary" ? summary.built : -1, 4);
    const system = stepPath(cold, "system");
    const boot = JSON.parse(readFileSync(path.join(system, "boot.json"), "utf8")) as { release: string; kernel: string; initrd: string; rootfs: string; kernelParams: string[] };
    assert.match(boot.release, /^\d+\.\d+\.\d+-\d+-amd64$/);
    assert.deepEqual(boot.kernelParams, ["console=ttyS0"]);
    assert.ok(existsSync(boot.kernel) && existsSync(boot.initrd) && existsSync(boot.rootfs));
    const files = tarList(boot.rootfs);
    assert.equal(tarRead(boot.rootfs, "./etc/hostname"), "qemu\n");
    assert.match(tarRead(boot.rootfs, "./etc/ssh/authorized_keys.d/brendan"), /^ssh-ed25519 \S+ brendan@laptop\n$/);
    assert.deepEqual(files.filter((f) => f.startsWith("./usr/lib/modules/")), [], "the kernel's modules are not in the rootfs: the image joins them");
    assert.ok(files.includes("./etc/systemd/system/multi-user.target.wants/ssh.service"), "sshd is enabled");
    assert.ok(files.includes("./etc/systemd/system/ssh.service.wants/ssh-keygen.service"), "host keys are made before sshd starts");
    assert.match(tarRead(boot.rootfs, "./etc/systemd/system/ssh-keygen.service"), /^ExecStart=\/etc\/keel\/services\/ssh-keygen-start$/m);
    assert.deepEqual(files.filter((f) => f.includes("keel-vm")), [], "the VM-only unit is only in keel run's image");
    assert.deepEqual(files.filter((f) => /ssh_host_.*_key/.test(f)), [], "no SSH host keys are baked in");
    const initrd = execFileSync("sh", ["-c", `zcat '${boot.initrd}' | cpio -t 2>/dev/null`], { encoding: "utf8" });
    assert.match(initrd, /^init$/m);
    assert.match(initrd, /\/virtio_blk\.ko$/m);
    assert.match(initrd, /\/crc32c_generic\.ko$/m, "ext4's soft dependency");
  });

  test("a second build runs nothing and gives the same path", async () => {
    const started = performance.now();
    const again = await keel(["build", "qemu", "--json", "--no-link"], seed);
    const seconds = (performance.now() - started) / 1000;
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(again.events.filter((e) => e.type === "start"), [], "no step started");
    assert.deepEqual(again.events.filter((e) => e.type === "done").map((e) => e.type === "done" && e.status), ["cached", "cached", "cached", "cached"]);
    assert.equal(stepPath(again, "system"), stepPath(cold, "system"));
    console.log(`# no-op build: ${seconds.toFixed(2)} s`);
  });

  test("--dry-run lists the steps and builds nothing", async () => {
    const dir = variant("dry", ["file"]);
    const result = await keel(["build", "dry", "--dry-run"], dir);
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout.trim().split("\n");
    assert.deepEqual(lines.map((l) => l.split(/\s+/)[0]), ["kernel", "initrd", "rootfs", "system"]);
    assert.match(lines[0] ?? "", /^kernel +[0-9a-f]{32} {2}cached {2}/);
    assert.match(lines[2] ?? "", /^rootfs +[0-9a-f]{32} {2}to build {2}/);
    assert.ok(!existsSync((lines[2] ?? "").split(/\s+/).pop() ?? "/"), "nothing was built");
  });

  test("a build killed mid-way leaves no partial entry, and the next build succeeds", async () => {
    const dir = variant("killed", ["file"]);
    let stopped = false;
    const killed = await keel(["build", "killed", "--json", "--no-link"], dir, {
      onEvent: (event, stop) => {
        if (event.type === "start" && event.step === "rootfs" && !stopped) {
          stopped = true;
          setTimeout(stop, 3000);
        }
      },
    });
    assert.ok(stopped, "the rootfs step started");
    assert.equal(killed.code, 143, killed.stderr);
    const rootfs = stepPath(killed, "rootfs");
    assert.equal(existsSync(rootfs), false, "no rootfs entry");
    assert.deepEqual(readdirSync(path.join(store, "tmp")), [], "no temporary directory");
    assert.deepEqual(readdirSync(path.join(store, "locks")), ["store.lock"], "no lock of a step is left");
    execFileSync("flock", ["--nonblock", "--exclusive", path.join(store, "locks/store.lock"), "true"]);
    const rebuilt = await keel(["build", "killed", "--json", "--no-link"], dir);
    assert.equal(rebuilt.code, 0, rebuilt.stderr);
    assert.ok(existsSync(path.join(rootfs, "rootfs.tar")));
  });

  test("keel.lock pins every package of the system with version and sha256; a package added to the config is refused until locked", async () => {
    const lock = JSON.parse(readFileSync(path.join(seed, "keel.lock"), "utf8")) as { systems: Record<string, { debian: { date: string; packages: Record<string, { version: string; sha256: string }> } }> };
    const pin = lock.systems.qemu?.debian;
    assert.ok(pin, "the seed's keel.lock pins qemu");
    const installed = tarRead(path.join(stepPath(cold, "rootfs"), "rootfs.tar"), "./var/lib/dpkg/status");
    const versions = Object.fromEntries([...installed.matchAll(/^Package: (\S+)\n(?:.+\n)*?Version: (\S+)$/gm)].map(([, name = "", version = ""]) => [name, version]));
    assert.deepEqual(Object.keys(versions).sort(), Object.keys(pin.packages).sort(), "installed = pinned");
    for (const [name, deb] of Object.entries(pin.packages)) {
      assert.equal(versions[name], deb.version, name);
      assert.match(deb.sha256, /^[0-9a-f]{64}$/);
    }
    const dir = variant("unlocked", ["file"], { lock: false });
    writeSeedLock(dir, "unlocked");
    const refused = await keel(["build", "unlocked"], dir);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^error: The system `unlocked' is not pinned: `.*keel\.lock' pins its Debian packages for another package list \(now \+file\)\.\nFix: run `keel lock` .* or `keel update unlocked` /m);
  });

  test("with the mirror unreachable and keel.lock unchanged, a changed /etc file builds from the store's .debs", async () => {
    // The seed's package set, so the seed's pin applies; nothing listens on port 9.
    const dir = variant("offline", [], { lock: false, more: 'distro: { mirror: "http://127.0.0.1:9/debian" }, environment: { etc: { "keel-offline": { text: "built offline\\n" } } }' });
    writeSeedLock(dir, "offline");
    const before = readFileSync(path.join(dir, "keel.lock"), "utf8");
    const result = await keel(["build", "offline", "--json", "--no-link"], dir);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(Object.fromEntries(result.events.flatMap((e) => (e.type === "done" ? [[e.step, e.status]] : []))), { kernel: "cached", initrd: "cached", rootfs: "built", system: "built" });
    const tarball = path.join(stepPath(result, "rootfs"), "rootfs.tar");
    assert.equal(tarRead(tarball, "./etc/keel-offline"), "built offline\n");
    assert.match(tarRead(tarball, "./etc/apt/sources.list"), /^deb http:\/\/127\.0\.0\.1:9\/debian bookworm main$/m, "the system keeps its configured mirror");
    assert.equal(readFileSync(path.join(dir, "keel.lock"), "utf8"), before, "keel.lock unchanged");
  });

  test("keel update shows what moved; a package no suite has is refused by keel lock with its name", async () => {
    const dir = variant("moved", ["file"]);
    const file = path.join(dir, "keel.lock");
    const lock = JSON.parse(readFileSync(file, "utf8")) as { systems: Record<string, { debian: { packages: Record<string, { version: string }> } }> };
    const pinnedFile = lock.systems.moved?.debian.packages.file;
    assert.ok(pinnedFile, "file is pinned");
    const version = pinnedFile.version;
    pinnedFile.version = "0.0-keel-old";
    writeFileSync(file, JSON.stringify(lock, null, 2));
    const update = await keel(["update", "moved"], dir);
    assert.equal(update.code, 0, update.stderr);
    assert.match(update.stdout + update.stderr, new RegExp(`^moved: file 0\\.0-keel-old → ${version.replace(/[.+~]/g, "\\$&")}$`, "m"));
    const unknown = variant("unknown", ["no-such-package-for-keel"], { lock: false });
    const refused = await keel(["lock"], unknown);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /no-such-package-for-keel/);
    assert.match(refused.stderr, /\nFix: /);
    assert.ok(!existsSync(path.join(unknown, "keel.lock")), "nothing half-written");
  });

  test("two concurrent builds of one system build it once", async () => {
    const dir = variant("twice", ["file", "less"]);
    const [one, two] = await Promise.all([keel(["build", "twice", "--json", "--no-link"], dir), keel(["build", "twice", "--json", "--no-link"], dir)]);
    assert.equal(one.code, 0, one.stderr);
    assert.equal(two.code, 0, two.stderr);
    assert.equal(stepPath(one, "system"), stepPath(two, "system"));
    const rootfs = stepPath(one, "rootfs");
    const log = readFileSync(path.join(store, "logs", `${path.basename(rootfs)}.log`), "utf8");
    assert.equal(log.match(/^\$ mmdebstrap /gm)?.length, 1, "mmdebstrap ran once");
    const statuses = [one, two].map((r) => r.events.find((e) => e.type === "done" && e.step === "rootfs"));
    assert.deepEqual(statuses.map((e) => e?.type === "done" && e.status).sort(), ["built", "cached"]);
  });

  test("a failing tool shows its command line, exit code, last lines and log", async () => {
    // A unit that no package ships: enabling it fails in mmdebstrap's customize hook.
    const dir = variant("broken", [], { more: 'systemd: { services: { "no-such-unit-for-keel": { wantedBy: ["multi-user.target"] } } }' });
    const result = await keel(["build", "broken"], dir);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^error: "mmdebstrap --mode=auto .*" returned non-zero exit code \d+\.\nIts last lines of output:\n/m);
    assert.match(result.stderr, /no-such-unit-for-keel/);
    const log = /^The full log is in (\S+)$/m.exec(result.stderr)?.[1];
    assert.ok(log && existsSync(log), "the log is kept");
    assert.doesNotMatch(result.stderr, /^\s+at /m);
    assert.equal(readdirSync(store).some((name) => name.endsWith("-rootfs-broken")), false);
  });

  test("keel log shows a step's commands; keel shell runs a command in the root filesystem", async () => {
    const log = await keel(["log", "qemu", "rootfs"], seed);
    assert.equal(log.code, 0, log.stderr);
    assert.match(log.stdout, /^\$ mmdebstrap --mode=auto/m);
    const shell = await keel(["shell", "qemu", "rootfs", "--", "cat", "/etc/hostname"], seed);
    assert.equal(shell.code, 0, shell.stderr);
    assert.equal(shell.stdout, "qemu\n");
  });

  test("result-<system> is a root: gc keeps it and frees what nothing uses", async () => {
    const dir = variant("kept", ["file"]);
    const built = await keel(["build", "kept"], dir);
    assert.equal(built.code, 0, built.stderr);
    const link = path.join(dir, "result-kept");
    assert.equal(readlinkSync(link), stepPath(await keel(["build", "kept", "--json"], dir), "system"));
    const gc = await keel(["gc", "--json"], dir);
    const freed = JSON.parse(gc.stdout) as { entries: number; bytes: number };
    assert.ok(freed.entries >= 1 && freed.bytes > 1_000_000, `gc freed ${gc.stdout}`);
    assert.ok(existsSync(path.join(link, "boot.json")), "the result survives gc");
    assert.ok(existsSync(path.join(link, "rootfs", "rootfs.tar")));
  });

  test("an ordinary user builds with mmdebstrap's unshare mode", { skip: process.getuid?.() !== 0 && "needs root to switch to the test user" }, async () => {
    const user = "keel-builder";
    try {
      execFileSync("id", [user], { stdio: "ignore" });
    } catch {
      execFileSync("useradd", ["--create-home", "--shell", "/bin/sh", user]);
    }
    // The user must be able to read keel; a checkout under /root is copied.
    let keelRoot = root;
    try {
      execFileSync("runuser", ["-u", user, "--", "test", "-r", path.join(root, "bin/keel.js")]);
    } catch {
      keelRoot = path.join(scratch, "keel");
      for (const part of ["bin", "dist", "node_modules", "package.json", "examples"]) cpSync(path.join(root, part), path.join(keelRoot, part), { recursive: true });
      execFileSync("chmod", ["-R", "a+rX", keelRoot]);
    }
    const dir = variant("rootless", ["file"], { keelRoot });
    const userStore = path.join(scratch, "user-store");
    mkdirSync(userStore);
    execFileSync("chown", [user, userStore]);
    // A home of their own, where keel keeps its cache (compiled config files among it).
    const home = path.join(scratch, `home-${user}`);
    mkdirSync(home, { recursive: true });
    execFileSync("chown", [user, home]);
    const result = await keel(["build", "rootless", "--json", "--no-link", "--store", userStore, "--no-typecheck"], dir, { user, keelRoot });
    assert.equal(result.code, 0, result.stderr);
    const rootfs = path.join(stepPath(result, "rootfs"), "rootfs.tar");
    assert.match(readFileSync(path.join(userStore, "logs", `${path.basename(path.dirname(rootfs))}.log`), "utf8"), /I: automatically chosen mode: unshare/);
    const listing = execFileSync("tar", ["--numeric-owner", "-tvf", rootfs, "./etc/shadow", "./home/brendan/"], { encoding: "utf8" });
    assert.match(listing, /^-rw-r----- 0\/42 .* \.\/etc\/shadow$/m, "ownership inside the tarball is the system's, not the user's");
    assert.match(listing, /^drwxr-xr-x 1000\/1000 .* \.\/home\/brendan\/$/m);
    const shell = await keel(["shell", "rootless", "rootfs", "--store", userStore, "--no-typecheck", "--", "stat", "-c", "%U:%G %a", "/etc/shadow"], dir, { user, keelRoot });
    assert.equal(shell.code, 0, shell.stderr);
    assert.equal(shell.stdout, "root:shadow 640\n", "keel shell as the user shows the files' real owners");
    assert.deepEqual(readdirSync(os.tmpdir()).filter((name) => name.startsWith("keel-shell-rootless-")), [], "the throwaway copy is deleted");
    // keel run's disk image, made as the user too: mke2fs -d inside the user namespace keeps the owners.
    const dry = await keel(["run", "rootless", "--dry-run", "--accel", "tcg", "--store", userStore, "--no-typecheck"], dir, { user, keelRoot });
    assert.equal(dry.code, 0, dry.stderr);
    const image = /-drive file=([^,]+),format=raw/.exec(dry.stdout)?.[1] ?? "";
    const shadow = execFileSync("debugfs", ["-R", "stat /etc/shadow", image], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    assert.match(shadow, /User: +0 +Group: +42 /, "the image keeps /etc/shadow's owners");
    assert.match(shadow, /Mode: +0640/);
    // keel image as the user: a GPT disk made without root or loop devices, the root partition's tree owned as the system says.
    const disk = path.join(home, "rootless.img");
    const made = await keel(["image", "rootless", "-o", disk, "--store", userStore, "--no-typecheck"], dir, { user, keelRoot });
    assert.equal(made.code, 0, made.stderr);
    assert.match(execFileSync("sfdisk", ["-d", disk], { encoding: "utf8" }), /type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B[^\n]*name="ESP"\n.*type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709/s);
    const offset = Number(/start=\s*(\d+), size=\s*\d+, type=4F68BCE3/.exec(execFileSync("sfdisk", ["-d", disk], { encoding: "utf8" }))?.[1]) * 512;
    const inDisk = execFileSync("debugfs", ["-R", "stat /generations/1/etc/shadow", `${disk}?offset=${offset}`], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    assert.match(inDisk, /User: +0 +Group: +42 /, "the disk's generation keeps /etc/shadow's owners");
  });
});

describe("keel doctor", () => {
  test("passes on this machine, with KVM as a notice at most", async () => {
    const result = await keel(["doctor"], scratch);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    for (const name of ["mmdebstrap", "apt-get", "dpkg-deb", "depmod", "qemu-system-x86_64", "busybox", "mmdebstrap can build"]) {
      assert.match(result.stdout, new RegExp(`^✓ ${name.replace(/[-/\\^$*+?.()|[\]{}]/g, "\\$&")} `, "m"));
    }
    assert.match(result.stdout, /^[✓!] kvm /m);
  });
});
