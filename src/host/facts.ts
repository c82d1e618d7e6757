// Facts about the build host that planning depends on, read once per command.
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import type { Project, ResolvedSystem } from "../config/project.js";
import { ConfigError } from "../errors.js";
import { systemRequest } from "../inputs/debian.js";
import { lockPath, pinned, pinnedDebian, readLock, type LockFile } from "../inputs/lock.js";
import { overridePath, readOverrides } from "../inputs/override.js";
import { isUrl, localPath } from "../inputs/resolve.js";
import { isNamedBaseConfig } from "../options/kernel.js";
import type { HostFacts, KernelHostFacts, KernelSource } from "../plan/plan.js";

export const busyboxPath = "/bin/busybox";
/** Debian's own mirror: what the host's apt sources fall back to, and what a system's apt sources name unless distro.mirror says. */
export const debianMirror = "http://deb.debian.org/debian";

/** The sha256 of a file's content; undefined when it cannot be read. */
export function hashFile(file: string): string | undefined {
  try {
    return createHash("sha256").update(readFileSync(file)).digest("hex");
  } catch {
    return undefined;
  }
}

/** The first Debian archive (not the security one) in the host's apt sources. */
export function hostMirror(aptDir = "/etc/apt"): string {
  const uris: string[] = [];
  const list = path.join(aptDir, "sources.list");
  if (existsSync(list)) {
    for (const line of readFileSync(list, "utf8").split("\n")) {
      const match = /^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)/.exec(line);
      if (match?.[1]) uris.push(match[1]);
    }
  }
  const parts = path.join(aptDir, "sources.list.d");
  const files = existsSync(parts) ? readdirSync(parts).filter((f) => f.endsWith(".sources")).sort() : [];
  for (const file of files) {
    for (const stanza of readFileSync(path.join(parts, file), "utf8").split(/\n\s*\n/)) {
      if (!/^Types:.*\bdeb\b/m.test(stanza) || /^Enabled:\s*no/im.test(stanza)) continue;
      const found = /^URIs:\s*(\S+)/m.exec(stanza)?.[1];
      if (found) uris.push(found);
    }
  }
  return uris.find((uri) => !/security/.test(uri))?.replace(/\/$/, "") ?? debianMirror;
}

export function debianArch(): string {
  return ({ x64: "amd64", arm64: "arm64", ia32: "i386" } as Record<string, string>)[process.arch] ?? process.arch;
}

/**
 * A kernel tree used in place, fingerprinted by each file's path, size and
 * modification time (not content: reading 1.5 GB per plan would be slow). An
 * edit changes it, and the kernel step runs Kbuild again, which rebuilds only
 * what the edit touched. `keep` narrows it to some files (by path in the tree).
 */
export function treeFingerprint(root: string, keep: (relative: string) => boolean = () => true): string {
  const hash = createHash("sha256");
  const walk = (dir: string, prefix: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (entry.name === ".git") continue;
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full, `${prefix}${entry.name}/`);
      else if (keep(`${prefix}${entry.name}`)) {
        const stat = statSync(full, { throwIfNoEntry: false });
        if (stat) hash.update(`${prefix}${entry.name}\0${stat.size}\0${stat.mtimeMs}\n`);
      }
    }
  };
  walk(root, "");
  return hash.digest("hex");
}

/** Whether a directory is the top of a kernel source tree. */
export function isKernelTree(dir: string): boolean {
  return existsSync(path.join(dir, "Makefile")) && existsSync(path.join(dir, "Kconfig"));
}

/**
 * The input boot.kernel.source names: the tree given for this run (`keel
 * kernel run --source`), else keel.override.json's tree, else a path input's
 * tree, else the input as keel.lock pins it.
 */
function kernelSource(config: ResolvedSystem, project: Project, sourceTree: string | undefined, lock: () => LockFile): KernelSource | undefined {
  const input = config.boot.kernel.source;
  const spec = input === null ? undefined : project.inputs[input];
  if (input === null || spec === undefined) return undefined;
  const projectDir = path.dirname(project.file);
  const override = sourceTree === undefined ? readOverrides(project.file)[input] : undefined;
  const treePath = sourceTree ?? override?.path ?? (spec.type === "path" ? spec.path : undefined);
  if (treePath !== undefined) {
    const tree = localPath(treePath, projectDir);
    const fix =
      sourceTree !== undefined
        ? "Fix: name the top of a kernel tree with --source."
        : override
          ? `Fix: run \`keel kernel checkout <system> --reset\` to build from keel.lock's source again, or correct \`path\` in ${overridePath(project.file)}.`
          : `Fix: correct \`path\` of the input \`${input}' in ${project.file}.`;
    if (!isKernelTree(tree)) {
      throw new ConfigError(`The input \`${input}' is the path ${tree}, which is not a kernel source tree (no Makefile and Kconfig at its top).\n${fix}`);
    }
    // Kbuild refuses to build out of tree (O=) from a source that was configured in place.
    const inPlace = [".config", "include/config"].filter((f) => existsSync(path.join(tree, f)));
    if (inPlace.length > 0) {
      throw new ConfigError(
        `The input \`${input}' is the tree ${tree}, which was configured or built in place (it has ${inPlace.join(" and ")}); keel builds out of the tree, which Kbuild refuses from such a source.\n` +
          `Fix: \`make -C ${tree} mrproper\` (it keeps your edits, removes the build; copy .config elsewhere first to keep it, and give it back with --kconfig or boot.kernel.configFragments).`,
      );
    }
    const overridden = override ? { override: { file: overridePath(project.file), ...(override.from ? { from: override.from } : {}) } } : {};
    return { kind: "tree", input, path: tree, fingerprint: treeFingerprint(tree), ...overridden };
  }
  const file = lockPath(project.file);
  const locked = pinned(input, spec, lock(), file);
  const location = locked.type === "tarball" && !isUrl(locked.url) ? localPath(locked.url, projectDir) : locked.url;
  return { kind: "pinned", input, locked, location };
}

function hashNamed(files: Record<string, string>, file: string, option: string): void {
  const hash = hashFile(file);
  if (hash === undefined) {
    throw new ConfigError(
      `${option} names ${file}, which is not a file keel can read.
` +
        "Fix: correct the path (a relative one is taken from the module that sets it).",
    );
  }
  files[file] = hash;
}

/**
 * What planning the kernel alone reads of the host: the kernel's source and
 * the config files the system names. keel.lock is read (through `lock`) only
 * for a pinned source.
 */
export function kernelFacts(config: ResolvedSystem, project: Project, sourceTree?: string, lock = () => readLock(lockPath(project.file))): KernelHostFacts {
  const files: Record<string, string> = {};
  const kernel = config.boot.kernel;
  if (kernel.source !== null) {
    if (!isNamedBaseConfig(kernel.baseConfig)) hashNamed(files, kernel.baseConfig, "boot.kernel.baseConfig");
    for (const fragment of kernel.configFragments) hashNamed(files, fragment, "boot.kernel.configFragments");
  }
  const source = kernelSource(config, project, sourceTree, lock);
  return { arch: debianArch(), files, ...(source ? { kernelSource: source } : {}) };
}

/** `sourceTree`: a kernel tree that replaces the system's kernel source input for this command. */
export function hostFacts(system: string, config: ResolvedSystem, project: Project, sourceTree?: string): HostFacts {
  const file = lockPath(project.file);
  let lock: LockFile | undefined;
  const read = (): LockFile => (lock ??= readLock(file));
  const kernel = kernelFacts(config, project, sourceTree, read);
  const files = { ...kernel.files };
  for (const [name, file] of Object.entries(config.environment.etc)) {
    if (file.source !== null) hashNamed(files, file.source, `environment.etc."${name}".source`);
  }
  const { request, mirror } = systemRequest(config);
  const debian = pinnedDebian(system, request, read(), file);
  return { ...kernel, mirror, busybox: hashFile(busyboxPath) ?? "missing", files, debian };
}
