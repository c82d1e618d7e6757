// What several end-to-end files share: a loopback port nothing listens on,
// and keel run as a child process with a test's own environment.
import { spawn, type ChildProcess } from "node:child_process";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../", import.meta.url));

/** A TCP port nothing listens on now. */
export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export interface Result {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly seconds: number;
}

/**
 * Runs keel with `env` in `cwd`, in a process group of its own, without a
 * terminal (stdin is not one, so a confirmation needs --yes). `watch` sees
 * its standard error so far as it grows, and may kill it (a fault).
 */
export function keelIn(env: NodeJS.ProcessEnv): (args: readonly string[], cwd: string, watch?: (stderr: string, child: ChildProcess) => void, input?: string) => Promise<Result> {
  return (args, cwd, watch, input) => {
    const started = performance.now();
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [path.join(root, "bin/keel.js"), ...args], { cwd, env, detached: true, stdio: ["pipe", "pipe", "pipe"] });
      // Standard input ends at once, after `input` if given (as /dev/null would, without it).
      child.stdin.on("error", () => undefined);
      child.stdin.end(input ?? "");
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (chunk: Buffer) => (stdout += chunk));
      child.stderr.on("data", (chunk: Buffer) => {
        stderr += chunk;
        watch?.(stderr, child);
      });
      child.on("close", (code) => resolve({ code, stdout, stderr, seconds: (performance.now() - started) / 1000 }));
    });
  };
}
