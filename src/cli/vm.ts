import path from "node:path";
import { UsageError } from "../errors.js";
import { attachConsole, stopVm } from "../vm/machine.js";
import { listVms } from "../vm/state.js";
import { defineCommand, secondsOption } from "./command.js";
import { runningVmOf } from "./ssh.js";

const actions = ["list", "stop", "console"] as const;

export const vmCommand = defineCommand({
  name: "vm",
  summary: "list, stop or attach to VMs started with `keel run --detach`",
  description:
    "keel vm list              the running VMs of every project: system, pid, SSH port, accelerator, project.\n" +
    "keel vm stop <system>     power the guest off (ACPI), QEMU's quit after --grace seconds, or at once with --force.\n" +
    "keel vm console <system>  attach the terminal to the serial console; Ctrl-] detaches, the VM keeps running.",
  positionals: [
    { name: "action", required: true, description: "list, stop or console." },
    { name: "system", required: false, description: "The system whose VM to stop or attach to." },
  ],
  options: {
    force: { type: "boolean", description: "stop: quit QEMU at once instead of powering the guest off." },
    grace: { type: "string", value: "seconds", description: "stop: how long the guest may take to power off (default 60)." },
  },
  examples: [
    ["keel vm list", "What runs."],
    ["keel vm stop qemu", "Shut the qemu VM down."],
    ["keel vm console qemu", "Watch or use its serial console (Ctrl-] to detach)."],
  ],
  async run(context, { values, positionals }) {
    const [action = "", system] = positionals;
    if (!(actions as readonly string[]).includes(action)) {
      throw new UsageError(`keel vm: unknown action \`${action}'.\nFix: use one of ${actions.join(", ")}.`);
    }
    if (action === "list") {
      const vms = listVms(context.env);
      if (vms.length === 0) context.out.stdout("No VMs are running.\n");
      for (const vm of vms) {
        const ssh = vm.ssh ? `ssh ${vm.ssh.address}:${vm.ssh.port}` : "no ssh";
        context.out.stdout(`${vm.system.padEnd(12)} pid ${String(vm.pid).padEnd(8)} ${ssh.padEnd(22)} ${vm.accel.padEnd(4)} ${path.dirname(vm.project)}\n`);
      }
      return 0;
    }
    if (system === undefined) throw new UsageError(`keel vm ${action}: missing the argument <system>.\nFix: run \`keel vm ${action} <system>\`, e.g. \`keel vm ${action} qemu\`.`);
    const { paths, vm } = runningVmOf(context, system);
    if (action === "stop") {
      const grace = secondsOption(values.grace, "keel vm stop", "grace", 60, 0);
      const how = await stopVm(vm, paths, { force: values.force === true, grace: grace * 1000 });
      context.out.stderr(`keel: \`${system}' stopped (${how}).\n`);
      return 0;
    }
    context.out.stderr(`keel: attached to the console of \`${system}'; Ctrl-] detaches.\n`);
    const why = await attachConsole(paths, process.stdin, process.stdout);
    context.out.stderr(why === "detached" ? "\nkeel: detached; the VM keeps running.\n" : "\nkeel: the VM stopped.\n");
    return 0;
  },
});
