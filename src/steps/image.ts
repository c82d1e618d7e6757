// The image step: the root file system as an ext4 disk image (what `keel run`
// attaches read-only as the VM's first disk), with the kernel's modules joined
// in as /usr/lib/modules and the files under /etc in which the VM variant
// differs from the system (see planSystem). mke2fs -d fills it from an unpacked copy of
// rootfs.tar: no loop device, no mount. As an ordinary user both run in a user
// namespace, so that files keep their owners (the modules become root's).
// Output: rootfs.img (sparse, `diskSize` MiB).
import { mkdir, rm } from "node:fs/promises";
import path from "node:path";
import { shellQuote, systemOwners } from "../host/exec.js";
import { run, type BuildContext } from "./context.js";
import { etcFiles, writeOverlay, type EtcFile } from "./rootfs.js";
import { defineStep } from "./step.js";

export interface ImageSlice {
  /** MiB. */
  readonly diskSize: number;
  readonly label: string;
  /** Files written over the root filesystem's /etc, by path relative to /etc. */
  readonly etc: Readonly<Record<string, EtcFile>>;
}

/**
 * The shell command that unpacks the tarball, the kernel's modules and the
 * files of `etc` (a directory, or null) into `tree` and makes the image from it.
 */
export function imageScript(tarball: string, modules: string, etc: string | null, tree: string, image: string, slice: ImageSlice): string {
  const q = shellQuote;
  return [
    `tar -xf ${q(tarball)} -C ${q(tree)} --exclude='./dev/*'`,
    `mkdir -p ${q(`${tree}/usr/lib/modules`)}`,
    `cp -R ${q(`${modules}/.`)} ${q(`${tree}/usr/lib/modules/`)}`,
    ...(etc === null ? [] : [`cp -R --preserve=mode ${q(`${etc}/.`)} ${q(`${tree}/etc/`)}`]),
    `mke2fs -q -F -t ext4 -L ${q(slice.label)} -d ${q(tree)} ${q(image)} ${slice.diskSize}M`,
  ].join(" && ");
}

async function buildImage(context: BuildContext, out: string, inputs: { readonly rootfs: string; readonly kernel: string }, slice: ImageSlice): Promise<void> {
  const tree = path.join(out, ".tree");
  await mkdir(tree);
  const overlay = Object.keys(slice.etc).length === 0 ? null : path.join(out, ".overlay");
  if (overlay !== null) await writeOverlay(overlay, etcFiles(slice.etc));
  const etc = overlay === null ? null : path.join(overlay, "etc");
  const script = imageScript(path.join(inputs.rootfs, "rootfs.tar"), path.join(inputs.kernel, "lib/modules"), etc, tree, path.join(out, "rootfs.img"), slice);
  const namespace = systemOwners();
  try {
    await run(context, [...namespace, "sh", "-c", script]);
  } finally {
    // The unpacked tree is owned by the system's users (subordinate ids): remove it where it was made.
    await run(context, [...namespace, "rm", "-rf", "--one-file-system", tree], { nothrow: true });
    await rm(tree, { recursive: true, force: true });
    if (overlay !== null) await rm(overlay, { recursive: true, force: true });
  }
}

export const imageStep = defineStep<ImageSlice, "rootfs" | "kernel">({
  kind: "image",
  version: 3,
  build: (context, out, { slice, inputs }) => buildImage(context, out, inputs, slice),
});
