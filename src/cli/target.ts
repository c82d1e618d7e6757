// The machine a deploy-like command (deploy, generations, rollback, diff,
// gc --target) talks to: named on the command line or by the system's
// deploy options, reached with the user's OpenSSH.
import type { ResolvedSystem } from "../config/project.js";
import type { TargetState } from "../deploy/target.js";
import { MachineError, UsageError } from "../errors.js";
import { Remote, splitSshOptions } from "../host/ssh.js";
import type { Context } from "./command.js";
import { askSecret } from "./confirm.js";

export const targetOptions = {
  "target-host": { type: "string", value: "user@host", description: "The machine (default: the system's deploy.targetHost)." },
  "ssh-opts": { type: "string", value: "options", dashValue: true, description: "More ssh options, e.g. '-p 8022' (after KEEL_SSHOPTS and deploy.sshOptions, they win)." },
  "boot-timeout": { type: "string", value: "seconds", description: "How long a boot may take to answer SSH and start its units (default 300)." },
} as const;

/**
 * The machine to deploy to, from the command line, KEEL_SSHOPTS (the seed's
 * NIX_SSHOPTS) and the config, in that order of precedence (ssh takes an
 * option's first value).
 */
export function targetRemote(
  context: Context,
  command: string,
  config: { readonly deploy: Pick<ResolvedSystem["deploy"], "targetHost" | "sshOptions"> },
  values: { readonly "target-host"?: string; readonly "ssh-opts"?: string },
): Remote {
  const target = values["target-host"] ?? config.deploy.targetHost;
  if (target === null) throw new UsageError(`keel ${command}: which machine? The system sets no deploy.targetHost.\nFix: give --target-host user@host, or set deploy.targetHost in its config.`);
  const words = (text: string, where: string): string[] => {
    const split = splitSshOptions(text);
    if (split === undefined) throw new UsageError(`keel ${command}: ${where} ${text} has an unterminated quote.\nFix: close the quote.`);
    return split;
  };
  const options = [
    ...words(values["ssh-opts"] ?? "", "--ssh-opts"),
    ...words(context.env.KEEL_SSHOPTS ?? "", "KEEL_SSHOPTS"),
    ...config.deploy.sshOptions,
    // A dropped connection is noticed in 30 s, not at TCP's pace.
    ...["-o", "ServerAliveInterval=10", "-o", "ServerAliveCountMax=3"],
  ];
  return new Remote({ target, options, connectTimeout: 15, env: context.env });
}

/** "generation 3", with what keel deployed as it when known. */
export function describeGeneration(state: TargetState, generation: number | null): string {
  if (generation === null) return "no keel generation";
  const meta = state.meta.get(generation);
  return meta === undefined ? `generation ${generation}` : `generation ${generation} (${meta.system}, ${meta.hash.slice(0, 12)})`;
}


/** The sudo password, asked at most once per keel run (every machine of a `--on` deploy is tried with it). */
let sudoPassword: Promise<string> | undefined;

/** The machine, connected, with root there (see gainRoot); a failure closes the connection. */
export async function openTarget(context: Context, command: string, config: ResolvedSystem, values: { readonly "target-host"?: string; readonly "ssh-opts"?: string }): Promise<Remote> {
  const remote = targetRemote(context, command, config, values);
  try {
    await gainRoot(context, command, remote);
    return remote;
  } catch (error) {
    await remote.disconnect();
    throw error;
  }
}

/**
 * Root on the machine: the login is root, or a user whose sudo needs no
 * password, or one whose password keel asks once and gives each sudo. A
 * refused password is said before anything is done.
 */
export async function gainRoot(context: Context, command: string, remote: Remote): Promise<void> {
  const login = (await remote.exec(["sh", "-c", "id -u; id -un"], { timeout: 60_000 })).stdout.trim().split("\n");
  if (login[0] === "0") return;
  const user = login[1] ?? "the user";
  if ((await remote.exec(["sudo", "-n", "true"], { nothrow: true, timeout: 60_000 })).exitCode === 0) {
    remote.elevate({ password: null });
    return;
  }
  sudoPassword ??= askSecret(context, `[sudo] password for ${user} on ${remote.where} (asked once: keel runs its commands there through sudo): `);
  remote.elevate({ password: await sudoPassword });
  const check = await remote.exec(["true"], { nothrow: true, timeout: 60_000 });
  if (check.exitCode !== 0) {
    throw new MachineError(
      `keel ${command}: ${user} logs in to ${remote.where} but sudo refused: ${check.stderr.trim() || `exit code ${check.exitCode}`}.\n` +
        `Fix: give ${user}'s password (on the terminal, or as the first line of keel's standard input), or let ${user} use sudo (the sudo group), or log in as root (--target-host root@…).`,
    );
  }
}
