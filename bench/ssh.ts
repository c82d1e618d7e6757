// keel ssh next to plain ssh: the seed's qemu system is booted once
// (`keel run qemu --detach --wait-ssh`, not timed), then 5 runs each of
// `keel ssh qemu -- true` and of plain ssh with the same key and pinned host
// key. keel's runs share the login --wait-ssh left open (the control master);
// plain ssh logs in each time. Node starting keel (`keel --version`) is timed
// too: it is most of what is left. Target: keel ssh ≤ plain ssh + 0.1 s.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { vmPaths, vmRemote } from "../src/vm/state.ts";
import { keelArgv, median, run, seed } from "./common.ts";

const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
const scratch = mkdtempSync(path.join(os.tmpdir(), "keel-bench-ssh-"));
const env = { ...process.env, XDG_STATE_HOME: path.join(scratch, "state"), KEEL_STORE: process.env.KEEL_STORE ?? path.join(scratch, "store") };
const port = 2222;

const times = (argv: readonly string[]) => Array.from({ length: rounds }, () => run(argv, { cwd: seed, env }).seconds);
const show = (label: string, runs: readonly number[]) => console.log(`${label.padEnd(40)} ${median(runs).toFixed(3)} s   (runs: ${runs.map((t) => t.toFixed(3)).join(" ")})`);

// Also when a run fails (run() exits then): a VM left behind would hold port 2222.
process.on("exit", () => {
  const [node, ...args] = keelArgv("vm", "stop", "qemu", "--force");
  spawnSync(node ?? "", args, { cwd: seed, env, stdio: "ignore" });
  rmSync(scratch, { recursive: true, force: true });
});

run(keelArgv("run", "qemu", "--detach", "--wait-ssh", "--accel", "tcg"), { cwd: seed, env });
const paths = vmPaths(env, path.join(seed, "keel.config.ts"), "qemu");
const plain = [
  "ssh", "-p", String(port), "-i", paths.key, "-o", "IdentitiesOnly=yes", "-o", `UserKnownHostsFile=${paths.knownHosts}`,
  "-o", "HostKeyAlias=keel-vm-qemu", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "root@127.0.0.1", "true",
];
const version = times(keelArgv("--version"));
const keel = times(keelArgv("ssh", "qemu", "--", "true"));
const ssh = times(plain);
await vmRemote(paths, "127.0.0.1", port, env).disconnect();
const cold = run(keelArgv("ssh", "qemu", "--", "true"), { cwd: seed, env }).seconds;
show("keel --version", version);
show("keel ssh qemu -- true", keel);
show("plain ssh root@127.0.0.1 true", ssh);
show("keel ssh, first login (no master)", [cold]);
console.log(`keel ssh − plain ssh:                    ${(median(keel) - median(ssh)).toFixed(3)} s   (target ≤ 0.100 s)`);
