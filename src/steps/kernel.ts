// The kernel step, Debian flavour: Debian's prebuilt kernel package unpacked
// into the store (nothing is installed on the host). Output:
//   vmlinuz  System.map  config  release  lib/modules/<release>/ (with modules.dep)
import { copyFile, mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { ConfigError } from "../errors.js";
import { PrivateApt, type Distro } from "./apt.js";
import { run, type BuildContext } from "./context.js";
import { defineStep } from "./step.js";

export interface DebianKernelSlice {
  readonly package: string;
  readonly distro: Distro;
}

/** Metapackages (linux-image-amd64) are followed to the image they depend on, at most this deep. */
const maxIndirections = 3;

/** Downloads Debian's kernel image package (following a metapackage) and unpacks it in `work`. */
async function fetchDebianKernel(context: BuildContext, work: string, slice: DebianKernelSlice): Promise<string> {
  const debs = path.join(work, "debs");
  const unpacked = path.join(work, "unpacked");
  await mkdir(debs, { recursive: true });
  const apt = await PrivateApt.create(context, path.join(work, "apt"), slice.distro);
  let name = slice.package;
  for (let depth = 0; ; depth++) {
    const deb = await apt.download(context, name, debs);
    await rm(unpacked, { recursive: true, force: true });
    await run(context, ["dpkg-deb", "-x", deb, unpacked]);
    const images = (await readdir(path.join(unpacked, "boot")).catch(() => [] as string[])).filter((f) => f.startsWith("vmlinuz-"));
    if (images.length > 0) return unpacked;
    const depends = (await run(context, ["dpkg-deb", "-f", deb, "Depends"])).stdout;
    const image = /(?:^|,\s*)(linux-image-[^\s,(|]+)/.exec(depends)?.[1];
    if (image === undefined || depth + 1 >= maxIndirections) {
      throw new ConfigError(
        `boot.kernel.debianPackage is "${slice.package}", which is not a Debian kernel image package (it has no /boot/vmlinuz-*).\n` +
          "Fix: name one like linux-image-amd64 or linux-image-6.1.0-28-amd64.",
      );
    }
    name = image;
  }
}

/** Debian's own kernel config (the `debian` base of a kernel from source), copied to `dest`. */
export async function debianKernelConfig(context: BuildContext, work: string, slice: DebianKernelSlice, dest: string): Promise<void> {
  const unpacked = await fetchDebianKernel(context, work, slice);
  const config = (await readdir(path.join(unpacked, "boot"))).find((f) => f.startsWith("config-")) as string;
  await copyFile(path.join(unpacked, "boot", config), dest);
  await rm(work, { recursive: true, force: true });
}

export async function buildDebianKernel(context: BuildContext, out: string, slice: DebianKernelSlice): Promise<void> {
  const work = path.join(out, ".work");
  const unpacked = await fetchDebianKernel(context, work, slice);
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

export const debianKernelStep = defineStep<DebianKernelSlice>({
  kind: "kernel-debian",
  version: 1,
  roles: [],
  build: (context, out, { slice }) => buildDebianKernel(context, out, slice),
});

/** The kernel release of a kernel step's output. */
export async function kernelRelease(kernel: string): Promise<string> {
  return (await readFile(path.join(kernel, "release"), "utf8")).trim();
}
