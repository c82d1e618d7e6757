// The image step: the generation as an ext4 image (what `keel run` attaches
// read-only as the VM's first disk; the VM's own disk holds its state): the
// root filesystem with the kernel's modules joined in as /usr/lib/modules and
// the files under /etc in which the VM variant differs from the system (see
// planSystem). mke2fs -d fills it from an unpacked tree: no loop device, no
// mount. As an ordinary user both run in a user namespace, so that files keep
// their owners (the modules become root's). Output: rootfs.img (sparse,
// `diskSize` MiB).
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

/** What a generation's tree is made of: the root filesystem's tarball, the kernel's modules and config, a variant's own /etc files. */
export interface GenerationParts {
  readonly tarball: string;
  readonly modules: string;
  /** The kernel's .config and its release (a file), kept in the tree as /usr/lib/modules/<release>/config (as Fedora does) for `keel diff`. */
  readonly kernelConfig: string;
  readonly kernelRelease: string;
  /** A directory of files to put over /etc, or null. */
  readonly etc: string | null;
}

/**
 * Shell commands that unpack a generation's parts into `tree` (which exists).
 * The kernel modules keep their build's times, so every generation with the
 * same kernel has the same files (a deploy hard-links them).
 */
export function generationTreeCommands(parts: GenerationParts, tree: string): string[] {
  const q = shellQuote;
  return [
    `tar -xf ${q(parts.tarball)} -C ${q(tree)} --exclude='./dev/*'`,
    `mkdir -p ${q(`${tree}/usr/lib/modules`)}`,
    `cp -R --preserve=mode,timestamps ${q(`${parts.modules}/.`)} ${q(`${tree}/usr/lib/modules/`)}`,
    `cp --preserve=mode,timestamps ${q(parts.kernelConfig)} ${q(`${tree}/usr/lib/modules/`)}"$(cat ${q(parts.kernelRelease)})/config"`,
    ...(parts.etc === null ? [] : [`cp -R --preserve=mode ${q(`${parts.etc}/.`)} ${q(`${tree}/etc/`)}`]),
  ];
}

type GenerationInputs = { readonly rootfs: string; readonly kernel: string };

/** Where a generation's root filesystem tarball and kernel modules are, in the rootfs and kernel outputs (or a system's links to them). */
export function generationSources(inputs: GenerationInputs): Omit<GenerationParts, "etc"> {
  return {
    tarball: path.join(inputs.rootfs, "rootfs.tar"),
    modules: path.join(inputs.kernel, "lib/modules"),
    kernelConfig: path.join(inputs.kernel, "config"),
    kernelRelease: path.join(inputs.kernel, "release"),
  };
}

/**
 * A generation's parts as a builder gets them from its inputs: `etc`, when it
 * has files, is written below `scratch` first (the caller removes it).
 */
export async function generationParts(inputs: GenerationInputs, etc: Readonly<Record<string, EtcFile>>, scratch: string): Promise<GenerationParts> {
  const withEtc = Object.keys(etc).length > 0;
  if (withEtc) await writeOverlay(scratch, etcFiles(etc));
  return { ...generationSources(inputs), etc: withEtc ? path.join(scratch, "etc") : null };
}

/**
 * Gives `use` a way to run shell scripts where files keep their owners (a
 * user namespace, unless keel runs as root) and removes `tree` afterwards the
 * same way: its files are the system's users'.
 */
export async function withSystemTree<T>(context: BuildContext, tree: string, use: (sh: (script: string) => Promise<string>) => Promise<T>): Promise<T> {
  const namespace = systemOwners();
  await mkdir(tree, { recursive: true });
  try {
    return await use(async (script) => (await run(context, [...namespace, "sh", "-c", script])).stdout);
  } finally {
    await run(context, [...namespace, "rm", "-rf", "--one-file-system", tree], { nothrow: true });
    await rm(tree, { recursive: true, force: true });
  }
}

async function buildImage(context: BuildContext, out: string, inputs: GenerationInputs, slice: ImageSlice): Promise<void> {
  const tree = path.join(out, ".tree");
  const overlay = path.join(out, ".overlay");
  const parts = await generationParts(inputs, slice.etc, overlay);
  const q = shellQuote;
  try {
    await withSystemTree(context, tree, (sh) =>
      sh([...generationTreeCommands(parts, tree), `mke2fs -q -F -t ext4 -L ${q(slice.label)} -d ${q(tree)} ${q(path.join(out, "rootfs.img"))} ${slice.diskSize}M`].join(" && ")),
    );
  } finally {
    await rm(overlay, { recursive: true, force: true });
  }
}

export const imageStep = defineStep<ImageSlice, "rootfs" | "kernel">({
  kind: "image",
  version: 6,
  build: (context, out, { slice, inputs }) => buildImage(context, out, inputs, slice),
});
