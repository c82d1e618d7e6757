// The source step: a pinned input's tree fetched into the store once — a
// Debian linux-source package, a tarball, a git commit — with its hash checked
// against keel.lock. Output: the source tree itself (Makefile at its top),
// read-only to Kbuild, which builds out of tree.
import { mkdir, readdir, rename, rm } from "node:fs/promises";
import path from "node:path";
import { ConfigError } from "../errors.js";
import { isKernelTree } from "../host/facts.js";
import type { LockedInput } from "../inputs/lock.js";
import { fetchHashing, hashMismatch } from "../inputs/resolve.js";
import { run, type BuildContext } from "./context.js";
import { defineStep } from "./step.js";

export interface SourceLocal {
  readonly input: string;
  readonly locked: LockedInput;
  /** Where the bytes are: a URL, or an absolute path. */
  readonly location: string;
}

/** Downloads a file and checks it is the one keel.lock pins. */
async function fetchPinned(context: BuildContext, local: SourceLocal, sha256: string, dest: string): Promise<void> {
  const actual = await fetchHashing(local.input, local.location, "/", dest, context.signal);
  if (actual !== sha256) {
    await rm(dest, { force: true });
    throw hashMismatch(local.input, local.location, sha256, actual);
  }
}

/** Moves what a tarball unpacked into `tree` to `out`, looking through one top directory (linux-6.1/). */
async function moveTree(tree: string, out: string): Promise<void> {
  let top = tree;
  const entries = await readdir(tree, { withFileTypes: true });
  if (entries.length === 1 && entries[0]?.isDirectory()) top = path.join(tree, entries[0].name);
  for (const name of await readdir(top)) await rename(path.join(top, name), path.join(out, name));
}

export async function buildSource(context: BuildContext, out: string, local: SourceLocal): Promise<void> {
  const work = path.join(out, ".work");
  const tree = path.join(work, "tree");
  await mkdir(tree, { recursive: true });
  const { locked } = local;
  switch (locked.type) {
    case "debian-source": {
      const deb = path.join(work, "source.deb");
      await fetchPinned(context, local, locked.sha256, deb);
      const unpacked = path.join(work, "deb");
      await run(context, ["dpkg-deb", "-x", deb, unpacked]);
      const tarball = (await readdir(path.join(unpacked, "usr/src")).catch(() => [] as string[])).find((f) => /^linux-source-.*\.tar\.\w+$/.test(f));
      if (tarball === undefined) {
        throw new ConfigError(`The input \`${local.input}' (${locked.package} ${locked.version}) has no /usr/src/linux-source-*.tar.* in it.\nFix: name a linux-source-<version> package.`);
      }
      await run(context, ["tar", "-xf", path.join(unpacked, "usr/src", tarball), "-C", tree]);
      break;
    }
    case "tarball": {
      const file = path.join(work, "source.tar");
      await fetchPinned(context, local, locked.sha256, file);
      await run(context, ["tar", "-xf", file, "-C", tree]);
      break;
    }
    case "git": {
      const repo = path.join(work, "repo");
      const git = (...args: string[]) => run(context, ["git", "-C", repo, ...args], { env: { ...context.env, GIT_TERMINAL_PROMPT: "0" } });
      await run(context, ["git", "init", "-q", repo]);
      // A shallow fetch of the commit when the server allows it; else the ref's history.
      const shallow = await git("fetch", "-q", "--depth", "1", locked.url, locked.commit).then(() => true, () => false);
      if (!shallow) await git("fetch", "-q", locked.url, locked.ref);
      const has = await git("cat-file", "-e", `${locked.commit}^{commit}`).then(() => true, () => false);
      if (!has) {
        throw new ConfigError(
          `The input \`${local.input}' pins commit ${locked.commit}, which ${locked.url} no longer has on ${locked.ref}.\nFix: run \`keel update ${local.input}\` to pin the ref's current commit.`,
        );
      }
      await git("archive", "--format=tar", "-o", path.join(work, "source.tar"), locked.commit);
      await run(context, ["tar", "-xf", path.join(work, "source.tar"), "-C", tree]);
      break;
    }
  }
  await moveTree(tree, out);
  await rm(work, { recursive: true, force: true });
  if (!isKernelTree(out)) {
    throw new ConfigError(`The input \`${local.input}' is not a kernel source tree (no Makefile and Kconfig at its top).\nFix: point it at a Linux source.`);
  }
}

/** Hashed by what identifies the content (package + version + sha256, sha256, commit), never by where it came from. */
export const sourceStep = defineStep<unknown, never, never, SourceLocal>({
  kind: "source",
  version: 1,
  build: (context, out, { local }) => buildSource(context, out, local),
});
