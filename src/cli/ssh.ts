import { findProjectFile } from "../config/load.js";
import { UsageError } from "../errors.js";
import { defaultWaitSeconds, waitForSsh } from "../vm/machine.js";
import { runningVm, vmPaths } from "../vm/state.js";
import { defineCommand, secondsOption, systemArgument, type Context } from "./command.js";

/** The running VM of a system of this project, or a usage error that says how to start it. */
export function runningVmOf(context: Context, system: string) {
  const paths = vmPaths(context.env, findProjectFile(context.cwd, context.globals.project), system);
  const vm = runningVm(paths);
  if (vm === undefined) {
    throw new UsageError(`The VM \`${system}' is not running.\nFix: start it with \`keel run ${system} --detach --wait-ssh\`.`);
  }
  return { paths, vm };
}

export const sshCommand = defineCommand({
  name: "ssh",
  summary: "log into a running VM over its forwarded SSH port",
  description:
    "Logs in as root with the key keel made for this project (which `keel run` authorizes in the guest).\n" +
    "Waits until the guest's SSH server answers. The guest's host key is remembered on first contact and\n" +
    "checked afterwards (until `keel run --reset`). Give a command after -- to run it instead of a shell:\n" +
    "its arguments arrive as given (no shell in between; for shell syntax run `-- sh -c '...'`).\n" +
    "The first login stays open for a few minutes and later ones share it, so they start at once.",
  positionals: [systemArgument],
  options: {
    timeout: { type: "string", value: "seconds", description: `How long to wait for the SSH server (default ${defaultWaitSeconds}).` },
  },
  examples: [
    ["keel ssh qemu", "A root shell in the running qemu VM."],
    ["keel ssh qemu -- systemctl is-system-running", "Run one command there."],
    ["keel ssh qemu -- sh -c 'journalctl -b | tail'", "Shell syntax, in the guest."],
  ],
  async run(context, { values, positionals, rest }) {
    const system = positionals[0] ?? "";
    const { paths, vm } = runningVmOf(context, system);
    const timeout = secondsOption(values.timeout, "keel ssh", "timeout", defaultWaitSeconds);
    const { remote } = await waitForSsh(vm, paths, timeout, context.env);
    return remote.interactive(rest);
  },
});
