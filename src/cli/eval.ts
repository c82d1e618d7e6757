import { evaluateSystem, systemEvaluation } from "../config/project.js";
import { showPath } from "../config/show.js";
import { isRecord } from "../config/tree.js";
import { projectPublicKey, vmPaths } from "../vm/state.js";
import { defineCommand, optionPathArgument, systemArgument } from "./command.js";

export const evalCommand = defineCommand({
  name: "eval",
  summary: "print a system's merged configuration",
  description:
    "Evaluates the system's modules with keel's built-in ones and prints the result: every option, or the one named.\n" +
    "The whole system is checked (every option, the assertions; warnings go to standard error); a named option is\n" +
    "evaluated with only what it needs, so another option's mistake does not hide it.\n" +
    "Without --json, each value is a line `option.path = value`.\n" +
    "With --vm, the system's VM variant: what `keel run` boots, with keel's VM module (qemu-vm) added\n" +
    "(root's keys include the project's, once `keel run` has made it).",
  positionals: [
    systemArgument,
    { name: "option.path", required: false, description: 'An option or group of options, e.g. `services.openssh` or `environment.etc."motd"`.' },
  ],
  options: {
    json: { type: "boolean", description: "Print the value as JSON." },
    vm: { type: "boolean", description: "Evaluate the system's VM variant, as `keel run` boots it." },
  },
  examples: [
    ["keel eval qemu", "Every option of the system `qemu', one per line."],
    ["keel eval qemu virtualisation.forwardPorts --json", "The VM's forwarded ports as JSON."],
    ["keel eval aethelred boot.kernel", "How aethelred's kernel is built."],
    ["keel eval aethelred environment.etc", "Every file keel writes under /etc (fstab, units, sshd_config.d/keel.conf …)."],
    ["keel eval qemu users.users.root --vm", "root in the VM `keel run qemu` boots: the project's key among its keys."],
  ],
  async run(context, { values, positionals }) {
    const [system = "", pathText] = positionals;
    const project = await context.project();
    const options = values.vm ? { vm: { sshKey: projectPublicKey(vmPaths(context.env, project.file, system)) } } : {};
    const path = pathText === undefined ? [] : optionPathArgument(pathText);
    let value: unknown;
    if (path.length === 0) {
      const evaluated = evaluateSystem(project, system, options);
      for (const warning of evaluated.warnings) context.out.stderr(`warning: ${warning}\n`);
      value = withoutChecks(evaluated.config);
    } else {
      // Only what the option needs: an unrelated option's error, a failed assertion elsewhere, do not stop it (as `nix eval`).
      value = systemEvaluation(project, system, options).resolve(path);
    }
    context.out.stdout(values.json ? `${JSON.stringify(value, null, 2)}\n` : flatten(path, value).join("\n") + "\n");
    return 0;
  },
});

/** The whole configuration leaves out `assertions` and `warnings`: checks, not settings. */
function withoutChecks(config: object): object {
  const { assertions: _assertions, warnings: _warnings, ...rest } = config as Record<string, unknown>;
  return rest;
}

function flatten(path: readonly string[], value: unknown): string[] {
  if (isRecord(value) && Object.keys(value).length > 0) {
    return Object.entries(value).flatMap(([key, child]) => flatten([...path, key], child));
  }
  return [`${showPath(path)} = ${JSON.stringify(value)}`];
}
