// The system step: what a machine boots, in one directory. It links the
// kernel, initrd and root filesystem outputs and records the kernel command
// line. The root filesystem does not hold the kernel's modules: whatever puts
// it on a disk joins in the kernel's lib/modules (see image.ts).
//   kernel -> <kernel output>   initrd -> <initrd output>   rootfs -> <rootfs output>
//   boot.json: { release, kernel, initrd, rootfs, kernelParams }
import { symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { kernelRelease } from "./kernel.js";
import { defineStep } from "./step.js";

type SystemInputs = Readonly<Record<"kernel" | "initrd" | "rootfs", string>>;

export interface BootDescription {
  readonly release: string;
  readonly kernel: string;
  readonly initrd: string;
  readonly rootfs: string;
  readonly kernelParams: readonly string[];
}

async function buildSystem(out: string, kernelParams: readonly string[], inputs: SystemInputs): Promise<void> {
  for (const [role, target] of Object.entries(inputs)) await symlink(target, path.join(out, role));
  const boot: BootDescription = {
    release: await kernelRelease(inputs.kernel),
    kernel: path.join(inputs.kernel, "vmlinuz"),
    initrd: path.join(inputs.initrd, "initrd.img"),
    rootfs: path.join(inputs.rootfs, "rootfs.tar"),
    kernelParams,
  };
  await writeFile(path.join(out, "boot.json"), `${JSON.stringify(boot, null, 2)}\n`);
}

export const systemStep = defineStep<{ readonly kernelParams: readonly string[] }, "kernel" | "initrd" | "rootfs">({
  kind: "system",
  version: 2,
  build: (_context, out, { slice, inputs }) => buildSystem(out, slice.kernelParams, inputs),
});
