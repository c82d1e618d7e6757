import { findProjectFile } from "../config/load.js";
import { UsageError } from "../errors.js";
import { runInteractive } from "../host/exec.js";
import { waitForSsh } from "../vm/machine.js";
import { runningVm, sshArgv, vmPaths } from "../vm/state.js";
import { defineCommand, systemArgument, type Context } from "./command.js";

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
    "checked afterwards (until `keel run --reset`). Give a command after -- to run it instead of a shell.",
  positionals: [systemArgument],
  options: {
    timeout: { type: "string", value: "seconds", description: "How long to wait for the SSH server (default 300)." },
  },
  examples: [
    ["keel ssh qemu", "A root shell in the running qemu VM."],
    ["keel ssh qemu -- systemctl is-system-running", "Run one command there."],
  ],
  async run(context, { values, positionals, rest }) {
    const system = positionals[0] ?? "";
    const { paths, vm } = runningVmOf(context, system);
    const timeout = values.timeout === undefined ? 300 : Number(values.timeout);
    if (!Number.isFinite(timeout) || timeout <= 0) throw new UsageError(`keel ssh: --timeout ${values.timeout} is not a number of seconds.\nFix: give a positive number, e.g. --timeout 60.`);
    const ready = await waitForSsh(vm, paths, timeout);
    return runInteractive(sshArgv(paths, ready.address, ready.port, rest), { env: context.env });
  },
});
