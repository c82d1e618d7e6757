// The image step: the root file system as an ext4 disk image (what `keel run`
// attaches read-only as the VM's first disk). mke2fs -d fills it from an
// unpacked copy of rootfs.tar: no loop device, no mount. As an ordinary user
// both run in a user namespace, so that files keep their owners. Output:
// rootfs.img (sparse, `diskSize` MiB).
import { mkdir, rm } from "node:fs/promises";
import path from "node:path";
import { shellQuote, systemOwners } from "../host/exec.js";
import { run, type BuildContext } from "./context.js";

export interface ImageSlice {
  /** MiB. */
  readonly diskSize: number;
  readonly label: string;
}

/** The shell command that unpacks the tarball into `tree` and makes the image from it. */
export function imageScript(tarball: string, tree: string, image: string, slice: ImageSlice): string {
  return [
    `tar -xf ${shellQuote(tarball)} -C ${shellQuote(tree)} --exclude='./dev/*'`,
    `mke2fs -q -F -t ext4 -L ${shellQuote(slice.label)} -d ${shellQuote(tree)} ${shellQuote(image)} ${slice.diskSize}M`,
  ].join(" && ");
}

export async function buildImage(context: BuildContext, out: string, rootfs: string, slice: ImageSlice): Promise<void> {
  const tree = path.join(out, ".tree");
  await mkdir(tree);
  const script = imageScript(path.join(rootfs, "rootfs.tar"), tree, path.join(out, "rootfs.img"), slice);
  const namespace = systemOwners();
  try {
    await run(context, [...namespace, "sh", "-c", script]);
  } finally {
    // The unpacked tree is owned by the system's users (subordinate ids): remove it where it was made.
    await run(context, [...namespace, "rm", "-rf", "--one-file-system", tree], { nothrow: true });
    await rm(tree, { recursive: true, force: true });
  }
}
