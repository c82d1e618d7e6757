// virtiofs shares need virtiofsd on the host, one per share, started before QEMU.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { ConfigError } from "../errors.js";

const candidates = ["/usr/libexec/virtiofsd", "/usr/lib/qemu/virtiofsd"];

function findVirtiofsd(env: NodeJS.ProcessEnv): string | undefined {
  const onPath = (env.PATH ?? "").split(":").map((dir) => path.join(dir, "virtiofsd"));
  return [...onPath, ...candidates].find((file) => existsSync(file));
}

/** Starts virtiofsd for one share in the background; returns its pid. */
export function startVirtiofsd(share: { readonly source: string; readonly readOnly: boolean }, socket: string, option: string, env = process.env): number {
  const program = findVirtiofsd(env);
  if (program === undefined) {
    throw new ConfigError(
      `${option} is shared with virtiofs, which needs virtiofsd on the host; none was found (PATH, ${candidates.join(", ")}).\n` +
        'Fix: install virtiofsd (Debian 12: from bookworm-backports), or set mechanism = "9p", which needs nothing.',
    );
  }
  const child = spawn(program, [`--socket-path=${socket}`, `--shared-dir=${share.source}`, ...(share.readOnly ? ["--readonly"] : [])], {
    detached: true,
    stdio: "ignore",
  });
  child.unref();
  return child.pid ?? 0;
}
