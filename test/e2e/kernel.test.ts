// Kernels from source end to end, with Debian's linux-source-6.1: the seed's
// qemu switched to its small kernel in one line builds through ccache into a
// fresh cache; a fresh build directory then compiles almost nothing; a no-op
// build skips the kernel step; Ctrl-C during a build leaves no compiler
// running and no lock held; a kernel setting rebuilds the kernel and
// what boots it, never the root filesystem; `keel shell … kernel` is the same build;
// `keel doctor`'s ccache checks pass, and fail with the fix when the cache
// cannot be written; `keel kernel run`, code, explain and config --diff work
// on it, and `keel kernel run --source` builds a copy of its source at another
// path, with no project, from the cache; the kernel boots under `keel run`.
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import type { BuildEvent } from "../../src/steps/realize.ts";
import { freePort } from "./processes.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));
const scratch = mkdtempSync(path.join(os.tmpdir(), "keel-kernel-"));
chmodSync(scratch, 0o755);
const store = path.join(scratch, "store");
const env = {
  ...process.env,
  XDG_CACHE_HOME: path.join(scratch, "cache"),
  XDG_STATE_HOME: path.join(scratch, "state"),
  KEEL_STORE: store,
  KEEL_CCACHE_DIR: path.join(scratch, "ccache"),
};

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly events: BuildEvent[];
}

function keel(args: readonly string[], cwd: string, extraEnv: NodeJS.ProcessEnv = {}, user?: string): Promise<Run> {
  const argv = [process.execPath, path.join(root, "bin/keel.js"), ...args];
  const command = user ? ["setpriv", `--reuid=${user}`, `--regid=${user}`, "--clear-groups", "--", ...argv] : argv;
  return new Promise((resolve) => {
    const child = spawn(command[0] as string, command.slice(1), { cwd, env: { ...env, ...extraEnv }, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk));
    child.on("close", (code) => {
      const events = stdout.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as BuildEvent);
      resolve({ code, stdout, stderr, events });
    });
  });
}

/** The kernel step's `done` event: its store path, the files compiled and the ccache figures. */
function kernelDone(run: Run): { path: string; compiled: number; hits: number; misses: number; rate: number } {
  const done = run.events.find((e): e is Extract<BuildEvent, { type: "done" }> => e.type === "done" && e.step === "kernel");
  assert.ok(done, `no kernel step in:\n${run.stdout}\n${run.stderr}`);
  const match = /^(\d+) files? compiled; ccache (\d+) hits, (\d+) misses, ([\d.]+)% hit rate$/.exec(done.note ?? "");
  assert.ok(match, `the kernel step reports ccache: ${done.note}`);
  return { path: done.path, compiled: Number(match[1]), hits: Number(match[2]), misses: Number(match[3]), rate: Number(match[4]) };
}

describe("kernels from source", () => {
  const dir = path.join(scratch, "seed");
  const key = path.join(scratch, "key");
  let port: number;
  let release: string;

  before(async () => {
    port = await freePort();
    cpSync(path.join(root, "examples/seed"), dir, { recursive: true, filter: (f) => !path.basename(f).startsWith("result-") });
    mkdirSync(path.join(dir, "node_modules"));
    symlinkSync(root, path.join(dir, "node_modules/keel"));
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key]);
    // The switch the README shows: one line of qemu.ts.
    const qemu = path.join(dir, "qemu.ts");
    const original = readFileSync(qemu, "utf8");
    const switched = original.replace("kernels.debian", "kernels.small");
    assert.equal(original.split("\n").filter((line, i) => line !== switched.split("\n")[i]).length, 1);
    writeFileSync(qemu, switched);
    // This test's own port and key, as a user of the seed would edit common.ts.
    writeFileSync(
      path.join(dir, "local.ts"),
      `import { defineModule, mkForce } from "keel";\nexport default defineModule({\n` +
        `  virtualisation: { forwardPorts: mkForce([{ host: { port: ${port} }, guest: { port: 22 } }]) },\n` +
        `  users: { users: { root: { openssh: { authorizedKeys: { keys: [${JSON.stringify(readFileSync(`${key}.pub`, "utf8").trim())}] } } } } },\n});\n`,
    );
    writeFileSync(qemu, `import local from "./local";\n${switched.replace("imports: [common, kernels.small]", "imports: [common, kernels.small, local]")}`);
  });

  after(async () => {
    await keel(["vm", "stop", "qemu", "--force"], dir);
    rmSync(scratch, { recursive: true, force: true });
  });

  test("the small kernel builds from linux-source-6.1 through ccache into a fresh cache", async () => {
    const run = await keel(["build", "qemu", "--json"], dir);
    assert.equal(run.code, 0, run.stderr);
    const kernel = kernelDone(run);
    release = readFileSync(path.join(kernel.path, "release"), "utf8").trim();
    assert.match(release, /^6\.1\.\d+-keel-small$/);
    assert.ok(kernel.misses > 1000, `a cold cache misses: ${kernel.misses}`);
    const config = readFileSync(path.join(kernel.path, "config"), "utf8");
    for (const setting of ["CONFIG_64BIT=y", "CONFIG_VIRTIO_BLK=y", "CONFIG_OVERLAY_FS=y", 'CONFIG_LOCALVERSION="-keel-small"', "# CONFIG_LOCALVERSION_AUTO is not set"]) {
      assert.ok(config.includes(`${setting}\n`), setting);
    }
    const progress = run.events.filter((e) => e.type === "progress" && e.step === "kernel");
    assert.ok(progress.length > 10, "the kernel step reports progress while it builds");
    console.log(`# cold: ${kernel.hits} hits, ${kernel.misses} misses`);
  });

  test("Ctrl-C during a kernel build stops make and its compilers; no lock or tmp is left, and the next build succeeds", async () => {
    for (const name of readdirSync(store)) if (name.endsWith("-kernel-linux")) rmSync(path.join(store, name), { recursive: true });
    rmSync(path.join(store, "builds"), { recursive: true });
    const child = spawn(process.execPath, [path.join(root, "bin/keel.js"), "build", "qemu", "--json"], { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk));
    const compiling = new Promise<void>((resolve) => {
      child.stdout.on("data", (chunk: Buffer) => {
        stdout += chunk;
        if (stdout.includes('"type":"progress","step":"kernel"')) resolve();
      });
    });
    const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
    await compiling;
    await new Promise((resolve) => setTimeout(resolve, 8000));
    const interrupted = performance.now();
    child.kill("SIGINT");
    const code = await exited;
    const seconds = (performance.now() - interrupted) / 1000;
    assert.equal(code, 130, stderr);
    assert.match(stderr, /^keel: interrupted \(SIGINT\)/m);
    const left = readdirSync("/proc").filter((pid) => {
      try {
        return /^\d+$/.test(pid) && readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(store);
      } catch {
        return false;
      }
    });
    assert.deepEqual(left.map((pid) => readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ")), [], "no make, gcc or cc1 of the build is left");
    assert.deepEqual(readdirSync(path.join(store, "tmp")), [], "no temporary directory is left");
    for (const lock of readdirSync(path.join(store, "locks"))) execFileSync("flock", ["--nonblock", "--exclusive", path.join(store, "locks", lock), "true"]);
    assert.ok(!readdirSync(store).some((name) => name.endsWith("-kernel-linux")), "no kernel output");
    const next = await keel(["build", "qemu", "kernel", "--json"], dir);
    assert.equal(next.code, 0, next.stderr);
    const kernel = kernelDone(next);
    console.log(`# interrupted after 8 s of compiling: keel exited ${Math.round(seconds * 1000)} ms after SIGINT; the next build in that build directory: ${kernel.hits} hits, ${kernel.misses} misses`);
  });

  test("again in a fresh build directory, the warm cache hits more than 90%", async () => {
    for (const name of readdirSync(store)) if (name.endsWith("-kernel-linux")) rmSync(path.join(store, name), { recursive: true });
    rmSync(path.join(store, "builds"), { recursive: true });
    const run = await keel(["build", "qemu", "--json"], dir);
    assert.equal(run.code, 0, run.stderr);
    const kernel = kernelDone(run);
    assert.ok(kernel.rate > 90, `hit rate ${kernel.rate}% (${kernel.hits} hits, ${kernel.misses} misses)`);
    assert.ok(run.events.some((e) => e.type === "progress" && e.step === "kernel" && /%$/.test(e.text)), "a build of a config seen before shows a percentage");
    console.log(`# warm, fresh build directory: ${kernel.compiled} files compiled, ${kernel.hits} hits, ${kernel.misses} misses, ${kernel.rate}%`);
  });

  test("a no-op build skips the kernel step entirely", async () => {
    const run = await keel(["build", "qemu", "--json"], dir);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(run.events.filter((e) => e.type === "start"), []);
    const plan = run.events.find((e) => e.type === "plan");
    assert.ok(plan?.type === "plan" && plan.steps.every((s) => s.cached));
  });

  test("a kernel setting changes kernel, initrd and system only: the root filesystem stays cached", async () => {
    const local = path.join(dir, "local.ts");
    writeFileSync(local, readFileSync(local, "utf8").replace("export default defineModule({\n", 'export default defineModule({\n  boot: { kernel: { settings: { DEFAULT_HOSTNAME: "keel-e2e" } } },\n'));
    const run = await keel(["build", "qemu", "--json"], dir);
    assert.equal(run.code, 0, run.stderr);
    const plan = run.events.find((e) => e.type === "plan");
    assert.deepEqual(plan?.type === "plan" ? plan.steps.map((s) => [s.step, s.cached]) : [], [
      ["source", true], ["kernel", false], ["initrd", false], ["rootfs", true], ["system", false],
    ]);
    const done = Object.fromEntries(run.events.flatMap((e) => (e.type === "done" ? [[e.step, e.status]] : [])));
    assert.deepEqual(done, { source: "cached", kernel: "built", initrd: "built", rootfs: "cached", system: "built" });
    assert.ok(!run.events.some((e) => e.type === "start" && e.step === "rootfs"), "mmdebstrap did not run");
    const kernel = kernelDone(run);
    assert.match(readFileSync(path.join(kernel.path, "config"), "utf8"), /^CONFIG_DEFAULT_HOSTNAME="keel-e2e"$/m);
    console.log(`# one setting changed: ${kernel.hits} hits, ${kernel.misses} misses; rootfs cached`);
  });

  test("keel shell … kernel: make there is keel's build", async () => {
    const shell = await keel(["shell", "qemu", "kernel", "--", "make", "-s", "kernelrelease"], dir);
    assert.equal(shell.code, 0, shell.stderr);
    assert.equal(shell.stdout, `${release}\n`);
    assert.match(shell.stderr, /^keel: \S+\/builds\/kernel-linux-amd64-qemu\/\.config is as keel configured it /m, "the build configured it: nothing to run again");
    writeFileSync(path.join(store, "builds/kernel-linux-amd64-qemu/.config"), "# edited by hand\n", { flag: "a" });
    const edited = await keel(["shell", "qemu", "kernel", "--", "true"], dir);
    assert.match(edited.stderr, /^\$ .*make -C \S+-source-linux O=\S+\/builds\/kernel-linux-amd64-qemu olddefconfig$/m, "a .config changed by hand is configured again, the commands shown");
    const flags = await keel(["shell", "qemu", "kernel", "--", "sh", "-c", "echo $MAKEFLAGS; echo $CCACHE_DIR"], dir);
    assert.equal(flags.stdout, `-j${os.availableParallelism()} ARCH=x86_64 CC=ccache\\ gcc HOSTCC=ccache\\ gcc LOCALVERSION= srctree=${store}/builds/kernel-linux-amd64-qemu/keel-src\n${env.KEEL_CCACHE_DIR}\n`);
  });

  test("keel doctor's ccache checks pass: hello.c hits the second time, Kbuild's probes accept the wrapper", async () => {
    const doctor = await keel(["doctor"], dir);
    assert.equal(doctor.code, 0, doctor.stdout + doctor.stderr);
    assert.match(doctor.stdout, /^✓ ccache hits +hello\.c compiled twice in two directories: miss, then hit$/m);
    assert.match(doctor.stdout, /^✓ Kbuild compiler probe +cc-version\.sh says "GCC \d+"$/m);
    assert.match(doctor.stdout, /^✓ Kbuild assembler probe +as-version\.sh says "GNU \d+"$/m);
  });

  test("keel doctor fails with the fix when the ccache directory cannot be written", async () => {
    // Owned by root and not writable by others; as root, the check runs as nobody.
    const locked = path.join(scratch, "locked-ccache");
    mkdirSync(locked);
    chmodSync(locked, 0o555);
    const asOther = process.getuid?.() === 0 ? "65534" : undefined;
    const home = path.join(scratch, "other-home");
    mkdirSync(home);
    if (asOther !== undefined) execFileSync("chown", [asOther, home]);
    const doctor = await keel(["doctor"], "/", { KEEL_CCACHE_DIR: locked, HOME: home, XDG_CACHE_HOME: path.join(home, "cache"), KEEL_STORE: path.join(home, "store") }, asOther);
    assert.equal(doctor.code, 1, doctor.stdout + doctor.stderr);
    assert.match(doctor.stdout, new RegExp(`^✗ ccache directory +${locked} is not writable \\(EACCES\\), so ccache would fail every kernel compile \\("Failed to create directory"\\)\\. Fix: \`chown -R \\S+ ${locked}\`, or point KEEL_CCACHE_DIR at a directory you own$`, "m"));
  });

  test("keel kernel run boots the kernel with a busybox initramfs: CMD's output and exit code are keel's; a panic is reported with its trace", async () => {
    const run = await keel(["kernel", "run", "qemu", "--exec", "uname -r; exit 3"], dir);
    assert.equal(run.code, 3, run.stderr);
    assert.equal(run.stdout, `${release}\n`, "only the command's output, not the console's");
    const panic = await keel(["kernel", "run", "qemu", "--append", "rdinit=/nonexistent", "--exec", "true"], dir);
    assert.equal(panic.code, 1, panic.stderr);
    assert.match(panic.stderr, /^keel kernel run: the kernel reported a problem \(the whole console: \S+\):\nKernel panic - not syncing: VFS: Unable to mount root fs/m);
    assert.match(panic.stderr, /^Call Trace:$/m);
  });

  test("keel kernel run --source: a copy of the source elsewhere, no project, builds from the cache and boots", async () => {
    const source = readdirSync(store).find((name) => name.endsWith("-source-linux")) as string;
    const tree = path.join(scratch, "elsewhere/linux");
    mkdirSync(tree, { recursive: true });
    execFileSync("cp", ["-a", `${path.join(store, source)}/.`, tree]);
    // qemu's own .config as the fragment: the same configuration, so every compile command is qemu's but for where the source is.
    const config = path.join(store, "builds/kernel-linux-amd64-qemu/.config");
    const run = await keel(["kernel", "run", "--source", tree, "--kconfig", config, "--exec", "uname -r"], scratch);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, `${release}\n`);
    const [, hits = "0", misses = "0", rate = "0"] = /^kernel: built in .* ccache (\d+) hits, (\d+) misses, ([\d.]+)% hit rate$/m.exec(run.stderr) ?? [];
    assert.ok(Number(rate) > 90, `a tree at another path hits the cache: ${hits} hits, ${misses} misses\n${run.stderr}`);
    console.log(`# the source copied elsewhere, no project: ${hits} hits, ${misses} misses (${rate}%)`);
    writeFileSync(path.join(tree, ".config"), "CONFIG_64BIT=y\n");
    const dirty = await keel(["kernel", "run", "--source", tree, "--exec", "true"], scratch);
    assert.equal(dirty.code, 1);
    assert.match(dirty.stderr, /configured or built in place \(it has \.config\)[\s\S]*Fix: `make -C \S+ mrproper`/);
    rmSync(path.join(scratch, "elsewhere"), { recursive: true });
  });

  test("keel kernel code: a compile_commands.json of this configuration that clangd reads without errors", async () => {
    const code = await keel(["kernel", "code", "qemu"], dir);
    assert.equal(code.code, 0, code.stderr);
    const [, database = "", entries = ""] = /^compile_commands\.json: (\S+) \((\d+) files of this configuration\)$/m.exec(code.stdout) ?? [];
    assert.ok(Number(entries) > 1000, `${entries} entries in:\n${code.stdout}`);
    const source = /^source: +(\S+)/m.exec(code.stdout)?.[1] as string;
    const clangd = spawnSync("clangd", [`--check=${path.join(source, "kernel/fork.c")}`, `--compile-commands-dir=${path.dirname(database)}`], { encoding: "utf8" });
    assert.equal(clangd.error, undefined, "clangd is installed (.ci/run installs it)");
    assert.match(clangd.stderr, /All checks completed, 0 errors/, clangd.stderr.split("\n").filter((l) => l.startsWith("E[")).join("\n"));
  });

  test("keel kernel explain and config --diff say where an option's value came from", async () => {
    const explain = await keel(["kernel", "explain", "qemu", "VIRTIO_BLK"], dir);
    assert.equal(explain.code, 0, explain.stderr);
    assert.match(explain.stdout, /^CONFIG_VIRTIO_BLK=y in qemu's kernel$/m);
    assert.match(explain.stdout, /^tristate "Virtio block driver" +drivers\/block\/Kconfig:\d+$/m);
    assert.match(explain.stdout, /^ {4}VIRTIO {2}\[VIRTIO=y\]$/m, "its dependency, with its value");
    assert.match(explain.stdout, /^set by: boot\.kernel\.settings /m);
    const diff = await keel(["kernel", "config", "qemu", "--diff"], dir);
    assert.equal(diff.code, 0, diff.stderr);
    assert.match(diff.stdout, /^base tinyconfig: \d+ options set$/m);
    assert.match(diff.stdout, /^boot\.kernel\.settings: \d+ changed\n( {2}.*\n)* {2}VIRTIO_BLK +n → y$/m);
    assert.match(diff.stdout, /^olddefconfig \(.*\): \d+ changed$/m);
  });

  test("the small kernel boots under keel run: uname -r is its release, systemd has all it needs", async () => {
    const run = await keel(["run", "qemu", "--detach", "--wait-ssh", "--timeout", "240"], dir);
    assert.equal(run.code, 0, run.stderr);
    const uname = await keel(["ssh", "qemu", "--", "uname", "-r"], dir);
    assert.equal(uname.code, 0, uname.stderr);
    assert.equal(uname.stdout, `${release}\n`);
    const state = await keel(["ssh", "qemu", "--", "sh", "-c", "systemctl is-system-running --wait; systemctl --failed --no-legend"], dir);
    assert.equal(state.stdout, "running\n", "no unit failed for want of a kernel feature");
    const stop = await keel(["vm", "stop", "qemu"], dir);
    assert.equal(stop.code, 0, stop.stderr);
  });
});
