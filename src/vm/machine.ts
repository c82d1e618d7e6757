// A running VM: started in the background or on the terminal, watched until
// its sshd answers (or it dies, or its kernel panics), stopped through QMP,
// and its serial console attached to the terminal.
import { spawn } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import { rm, writeFile } from "node:fs/promises";
import net from "node:net";
import { VmError } from "../errors.js";
import { runInteractive } from "../host/exec.js";
import type { Remote } from "../host/ssh.js";
import { sshReadyLine } from "../options/qemu-vm.js";
import { consoleText, consoleTail, isAlive, vmRemote, type VmInfo, type VmPaths } from "./state.js";

/** How long `keel run --wait-ssh` and `keel ssh` wait for the guest by default. */
export const defaultWaitSeconds = 300;

/**
 * SSH probes under way at once once the guest's sshd says it listens: few,
 * since each costs the guest a forked sshd.
 */
const maxAttempts = 3;

/**
 * How often a probe is made before the console says sshd listens (a guest
 * that never says so, e.g. a disk made before keel printed it, is still
 * found). Rarely: QEMU holds each such connection for up to 75 s and hands
 * them all to sshd when it starts, where beyond MaxStartups (10) sshd drops
 * connections at random — the user's own `ssh -p 2222 localhost` among them.
 */
const quietProbeMilliseconds = 5000;

/**
 * How long a probe waits for sshd's banner. Short: before the guest's network
 * is up QEMU holds a connection without an answer, and only a new one reaches
 * the guest as soon as it is (3 s here made every fresh boot wait ~1.3 s
 * longer); a listening sshd answers in well under a second even under TCG.
 */
const probeMilliseconds = 1000;

/** Lines on the console that mean the guest will not come up. */
const fatalConsole = /Kernel panic - not syncing|keel stage 1: powering off/;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Starts QEMU in the background; resolves once it runs (its QMP socket is there). */
export async function startDetached(argv: readonly string[], paths: VmPaths, info: Omit<VmInfo, "pid">): Promise<VmInfo> {
  const [program, ...args] = argv as [string, ...string[]];
  await Promise.all([paths.qmp, paths.consoleSocket, paths.pidFile].map((file) => rm(file, { force: true })));
  const log = openSync(paths.qemuLog, "w");
  const child = spawn(program, args, { detached: true, stdio: ["ignore", log, log] });
  closeSync(log);
  child.unref();
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  for (let waited = 0; !existsSync(paths.qmp); waited += 50) {
    const code = await Promise.race([exited, sleep(50).then(() => undefined)]);
    if (code !== undefined || waited > 30_000) {
      if (code === undefined) child.kill("SIGKILL");
      throw new VmError(`QEMU did not start (${code === undefined ? "no QMP socket after 30 s" : `exit code ${code}`}):\n${readFileSync(paths.qemuLog, "utf8").trim()}\nFix: see QEMU's message above.`, paths.qemuLog);
    }
  }
  const running: VmInfo = { ...info, pid: child.pid ?? 0 };
  await writeFile(paths.info, `${JSON.stringify(running, null, 2)}\n`);
  return running;
}

/** Runs QEMU on the terminal until it exits; returns its exit code. */
export async function runOnTerminal(argv: readonly string[], paths: VmPaths, info: Omit<VmInfo, "pid">): Promise<number> {
  // The pid is QEMU's own, which it writes to its pidfile once it runs.
  const recordPid = setInterval(() => {
    if (!existsSync(paths.pidFile)) return;
    clearInterval(recordPid);
    const pid = Number(readFileSync(paths.pidFile, "utf8").trim());
    void writeFile(paths.info, `${JSON.stringify({ ...info, pid }, null, 2)}\n`);
  }, 100);
  try {
    return await runInteractive(argv);
  } finally {
    clearInterval(recordPid);
    await rm(paths.info, { force: true });
  }
}

/** Whether something answers with an SSH banner at address:port. */
export function sshAnswers(address: string, port: number, timeout = 3000, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: address, port });
    let received = "";
    const done = (answer: boolean) => {
      signal?.removeEventListener("abort", stop);
      socket.destroy();
      resolve(answer);
    };
    const stop = () => done(false);
    signal?.addEventListener("abort", stop, { once: true });
    socket.setTimeout(timeout, stop);
    socket.on("data", (chunk) => {
      received += chunk.toString("latin1");
      if (received.startsWith("SSH-")) done(true);
      else if (received.length >= 4) done(false);
    });
    socket.on("error", stop);
    socket.on("close", stop);
  });
}

/**
 * Waits until the VM's sshd answers and root can log in with the project's
 * key. That login stays open as the control master that later commands
 * share, so once one is up there is nothing to wait for. A VM that exits or
 * whose console shows a kernel panic fails at once, and one that takes longer
 * than `timeout` fails then, each with the console's last lines.
 */
export async function waitForSsh(
  vm: VmInfo,
  paths: VmPaths,
  timeoutSeconds: number,
  env?: NodeJS.ProcessEnv,
): Promise<{ readonly seconds: number; readonly address: string; readonly port: number; readonly remote: Remote }> {
  const started = performance.now();
  const failure = (what: string, fix: string) =>
    new VmError(`The VM \`${vm.system}' ${what}. The last lines of its console:\n${consoleTail(paths)}\nFix: ${fix}`, paths.consoleLog);
  const ssh = vm.ssh;
  if (ssh === null) throw failure("forwards no host port to its sshd", "add virtualisation.forwardPorts = [{ host: { port: 2222 }, guest: { port: 22 } }].");
  const remote = vmRemote(paths, ssh.address, ssh.port, env);
  const ready = () => ({ ...ssh, remote, seconds: (performance.now() - started) / 1000 });
  if (await remote.connected()) return ready();
  let answered = false;
  let attempts = 0;
  let lastProbe = -Infinity;
  // Each probe that reaches sshd costs the guest a forked sshd: once one has its banner, the others are let go.
  let stopAttempts = new AbortController();
  try {
    for (;;) {
      if (!isAlive(vm.pid)) throw failure("stopped before its SSH server answered", "read the console above; `keel run` without --detach shows the whole boot.");
      if (fatalConsole.test(consoleTail(paths, 200))) {
        await stopVm(vm, paths, { force: true });
        throw failure("failed to boot (its kernel panicked or stage 1 gave up)", "read the console above for the first error.");
      }
      // A banner is not yet a login: the first login also pins the guest's host key.
      if (answered) {
        if ((await remote.exec(["true"], { nothrow: true, timeout: 60_000 })).exitCode === 0) return ready();
        answered = false;
        stopAttempts = new AbortController();
      }
      // Attempts overlap: before the guest's network is up, QEMU holds a connection open without an answer.
      let probe: Promise<boolean> | undefined;
      const now = performance.now();
      if (listening(paths) ? attempts < maxAttempts : attempts === 0 && now - lastProbe >= quietProbeMilliseconds) {
        attempts++;
        lastProbe = now;
        probe = sshAnswers(ssh.address, ssh.port, probeMilliseconds, stopAttempts.signal).then((yes) => {
          attempts--;
          answered ||= yes;
          if (yes) stopAttempts.abort();
          return yes;
        });
      }
      if ((performance.now() - started) / 1000 > timeoutSeconds) {
        throw failure(`did not answer SSH on ${ssh.address}:${ssh.port} within ${timeoutSeconds} s`, "give it longer with --timeout, or read the console above.");
      }
      // A guest that is up answers within milliseconds: no need to sleep the whole interval then.
      const pause = sleep(250);
      await Promise.race([pause, probe?.then((yes) => (yes ? undefined : pause)) ?? pause]);
    }
  } finally {
    stopAttempts.abort();
  }
}

/** Whether the console says, since the guest's kernel last started, that its sshd listens. */
function listening(paths: VmPaths): boolean {
  const text = consoleText(paths);
  return text.indexOf(sshReadyLine, Math.max(0, text.lastIndexOf("Linux version "))) >= 0;
}

/** Sends QMP commands (after the capabilities handshake) and returns when the last is answered or the socket closes. */
function qmp(socketPath: string, commands: readonly string[], timeout: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect(socketPath);
    const queue = ["qmp_capabilities", ...commands];
    let buffered = "";
    const finish = () => {
      socket.destroy();
      resolve();
    };
    socket.setTimeout(timeout, finish);
    socket.on("error", finish);
    socket.on("close", finish);
    socket.on("data", (chunk) => {
      buffered += chunk.toString("utf8");
      let newline;
      while ((newline = buffered.indexOf("\n")) >= 0) {
        const message = JSON.parse(buffered.slice(0, newline)) as Record<string, unknown>;
        buffered = buffered.slice(newline + 1);
        if (!("QMP" in message) && !("return" in message) && !("error" in message)) continue;
        const next = queue.shift();
        if (next === undefined) return finish();
        socket.write(`${JSON.stringify({ execute: next })}\n`);
      }
    });
  });
}

/**
 * Stops the VM: an ACPI power-off its guest shuts down for, then QEMU's quit
 * after `grace` ms (or at once with `force`), then SIGKILL.
 */
export async function stopVm(vm: VmInfo, paths: VmPaths, options: { readonly force?: boolean; readonly grace?: number } = {}): Promise<"powered off" | "quit" | "killed"> {
  const until = async (ms: number) => {
    for (let waited = 0; waited < ms; waited += 100) {
      if (!isAlive(vm.pid)) return true;
      await sleep(100);
    }
    return !isAlive(vm.pid);
  };
  let how: "powered off" | "quit" | "killed" = "powered off";
  // The control master goes first: it would otherwise outlive the guest until its connection breaks.
  if (vm.ssh !== null) await vmRemote(paths, vm.ssh.address, vm.ssh.port).disconnect();
  if (!options.force) await qmp(paths.qmp, ["system_powerdown"], 2000);
  if (options.force || !(await until(options.grace ?? 60_000))) {
    how = "quit";
    await qmp(paths.qmp, ["quit"], 2000);
    if (!(await until(5000))) {
      how = "killed";
      process.kill(vm.pid, "SIGKILL");
      await until(5000);
    }
  }
  for (const helper of vm.helpers) {
    try {
      process.kill(helper, "SIGTERM");
    } catch {
      // Already gone with QEMU.
    }
  }
  await rm(paths.info, { force: true });
  return how;
}

/**
 * Attaches the terminal to the VM's serial console until Ctrl-] is typed or
 * the VM stops. Returns why it ended.
 */
export function attachConsole(paths: VmPaths, input: NodeJS.ReadStream, output: NodeJS.WriteStream): Promise<"detached" | "closed"> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(paths.consoleSocket);
    const raw = input.isTTY === true;
    const end = (why: "detached" | "closed") => {
      if (raw) input.setRawMode(false);
      input.off("data", onInput);
      // The command ends here: a paused but open stdin (a pipe) would keep keel running.
      input.destroy();
      socket.destroy();
      resolve(why);
    };
    const onInput = (chunk: Buffer) => {
      // Ctrl-] (0x1d), as in telnet.
      const stop = chunk.indexOf(0x1d);
      if (stop >= 0) {
        if (stop > 0) socket.write(chunk.subarray(0, stop));
        end("detached");
      } else socket.write(chunk);
    };
    socket.on("connect", () => {
      if (raw) input.setRawMode(true);
      input.on("data", onInput);
      input.resume();
    });
    socket.on("data", (chunk) => output.write(chunk));
    socket.on("close", () => end("closed"));
    socket.on("error", (error) => reject(new VmError(`Cannot attach to the console at ${paths.consoleSocket}: ${error.message}\nFix: is the VM running? See \`keel vm list\`.`, paths.consoleLog)));
  });
}
