// `keel hardware-config`: probe a machine, here or over SSH, read-only, and
// write what it has as a typed keel module (hardware/probe.ts reads it,
// hardware/generate.ts writes it).
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { exec } from "../host/exec.js";
import { hardwareModule } from "../hardware/generate.js";
import { parseProbe, probeScript } from "../hardware/probe.js";
import { defineCommand } from "./command.js";
import { gainRoot, targetOptions, targetRemote } from "./target.js";

/** The module without its first line, which holds the date: two probes of an unchanged machine compare equal. */
const body = (text: string): string => text.split("\n").slice(1).join("\n");

async function unifiedDiff(file: string, next: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "keel-hardware-"));
  try {
    const candidate = path.join(dir, path.basename(file));
    await writeFile(candidate, next);
    return (await exec(["diff", "-u", "--label", `a/${path.basename(file)}`, "--label", `b/${path.basename(file)}`, file, candidate], { nothrow: true })).stdout;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export const hardwareCommand = defineCommand({
  name: "hardware-config",
  summary: "probe a machine (here, or over SSH) and write its hardware as a keel module",
  description:
    "Reads the machine without changing it or installing anything: /proc, /sys, blkid -p (UUIDs from the filesystems\n" +
    "themselves, not from by-uuid links), and that kernel's modules.alias through modprobe -R. It writes fileSystems by\n" +
    "UUID, swapDevices, boot.initrd.availableKernelModules (what the path from / to the machine needs), kvm-intel or\n" +
    "kvm-amd, the interfaces with DHCP, and comments for what it could not know. Run as root (or give a host whose\n" +
    "login is root or has sudo). With -o, an existing file is shown as a diff first, and kept when only the date differs.",
  positionals: [],
  options: {
    "target-host": { type: "string", value: "user@host", description: "The machine to probe over SSH (default: this one)." },
    "ssh-opts": targetOptions["ssh-opts"],
    output: { type: "string", short: "o", value: "file", description: "Write the module there (default: print it)." },
    "dry-run": { type: "boolean", description: "With -o: show the diff against the file, write nothing." },
  },
  examples: [
    ["keel hardware-config -o aethelred-hardware.ts", "Probe this machine into aethelred-hardware.ts."],
    ["keel hardware-config --target-host root@aethelred --ssh-opts '-p 8022' -o aethelred-hardware.ts --dry-run", "What a probe of aethelred would change."],
  ],
  async run(context, { values }) {
    const target = values["target-host"];
    let output: string;
    let where: string;
    if (target === undefined) {
      output = (await exec(["sh", "-c", probeScript])).stdout;
      where = `${os.hostname()} (this machine${process.getuid?.() === 0 ? "" : ", not as root"})`;
    } else {
      const remote = targetRemote(context, "hardware-config", { deploy: { targetHost: target, sshOptions: [] } }, values);
      try {
        await gainRoot(context, "hardware-config", remote);
        output = (await remote.exec(["sh", "-c", probeScript], { timeout: 120_000 })).stdout;
      } finally {
        await remote.disconnect();
      }
      where = target;
    }
    const module = hardwareModule(parseProbe(output), where, new Date().toISOString().slice(0, 10));
    for (const line of module.unknown) context.out.stderr(`keel hardware-config: not known: ${line}.\n`);
    if (values.output === undefined) {
      context.out.stdout(module.text);
      return 0;
    }
    const file = path.resolve(context.cwd, values.output);
    const previous = existsSync(file) ? readFileSync(file, "utf8") : undefined;
    if (previous !== undefined && body(previous) === body(module.text)) {
      context.out.stderr(`keel hardware-config: ${values.output} already says what the machine has; left as it is.\n`);
      return 0;
    }
    if (previous !== undefined) context.out.stdout(await unifiedDiff(file, module.text));
    if (values["dry-run"] === true) {
      if (previous === undefined) context.out.stdout(module.text);
      context.out.stderr(`keel hardware-config: --dry-run: ${values.output} is unchanged.\n`);
      return 0;
    }
    await writeFile(`${file}.tmp`, module.text);
    await rename(`${file}.tmp`, file);
    context.out.stderr(`keel hardware-config: wrote ${values.output}; import it from the system's module.\n`);
    return 0;
  },
});
