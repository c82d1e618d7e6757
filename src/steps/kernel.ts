// The kernel step, Debian flavour: Debian's prebuilt kernel package, as
// keel.lock pins it, unpacked into the store (nothing is installed on the
// host). Output:
//   vmlinuz  System.map  config  release  lib/modules/<release>/ (with modules.dep)
import { copyFile, mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import type { PinnedDeb } from "../inputs/lock.js";
import { run, type BuildContext } from "./context.js";
import { debPath, fetchDebs, type DebSource } from "./debs.js";
import { defineStep } from "./step.js";

export interface DebianKernelSlice {
  /** The package asked for (a metapackage like linux-image-amd64, or an image package). */
  readonly package: string;
  /** The image package holding vmlinuz, which the metapackage leads to. */
  readonly image: string;
  /** Both, as keel.lock pins them. */
  readonly packages: Readonly<Record<string, PinnedDeb>>;
}


/** Debian's kernel image package, fetched into the store if needed and unpacked in `work`. */
async function unpackDebianKernel(context: BuildContext, work: string, slice: DebianKernelSlice, local: DebSource): Promise<string> {
  await fetchDebs(context.debs, local.mirror, slice.packages, context.signal, local.date);
  const unpacked = path.join(work, "unpacked");
  await mkdir(work, { recursive: true });
  await run(context, ["dpkg-deb", "-x", debPath(context.debs, (slice.packages[slice.image] as PinnedDeb).sha256), unpacked]);
  return unpacked;
}

/** Debian's own kernel config (the `debian` base of a kernel from source), copied to `dest`. */
export async function debianKernelConfig(context: BuildContext, work: string, slice: DebianKernelSlice, local: DebSource, dest: string): Promise<void> {
  const unpacked = await unpackDebianKernel(context, work, slice, local);
  const config = (await readdir(path.join(unpacked, "boot"))).find((f) => f.startsWith("config-")) as string;
  await copyFile(path.join(unpacked, "boot", config), dest);
  await rm(work, { recursive: true, force: true });
}

async function buildDebianKernel(context: BuildContext, out: string, slice: DebianKernelSlice, local: DebSource): Promise<void> {
  const work = path.join(out, ".work");
  const unpacked = await unpackDebianKernel(context, work, slice, local);
  const vmlinuz = (await readdir(path.join(unpacked, "boot"))).find((f) => f.startsWith("vmlinuz-")) as string;
  const release = vmlinuz.slice("vmlinuz-".length);
  await rename(path.join(unpacked, "boot", vmlinuz), path.join(out, "vmlinuz"));
  await rename(path.join(unpacked, "boot", `System.map-${release}`), path.join(out, "System.map"));
  await rename(path.join(unpacked, "boot", `config-${release}`), path.join(out, "config"));
  const modules = (await readdir(path.join(unpacked, "usr/lib/modules")).catch(() => [])).length > 0 ? "usr/lib/modules" : "lib/modules";
  await mkdir(path.join(out, "lib"), { recursive: true });
  await rename(path.join(unpacked, modules), path.join(out, "lib/modules"));
  await run(context, ["depmod", "-b", out, release]);
  await writeFile(path.join(out, "release"), `${release}\n`);
  await rm(work, { recursive: true, force: true });
}

export const debianKernelStep = defineStep<DebianKernelSlice, never, never, DebSource>({
  kind: "kernel-debian",
  version: 1,
  build: (context, out, { slice, local }) => buildDebianKernel(context, out, slice, local),
});

/** The kernel release of a kernel step's output. */
export async function kernelRelease(kernel: string): Promise<string> {
  return (await readFile(path.join(kernel, "release"), "utf8")).trim();
}
