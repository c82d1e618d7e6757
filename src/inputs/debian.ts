// Resolving a system's Debian packages, at `keel lock` time: the complete set
// mmdebstrap --variant=minbase installs (the Essential:yes packages, those of
// Priority:required, apt, the requested packages and everything they depend
// on, without Recommends, as mmdebstrap does), each pinned to a version and its
// .deb's sha256, size and path in the archive. apt computes it in a private
// directory with an empty dpkg status, so the host's installed packages and
// apt configuration do not leak into the pin.
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { evaluateSystem, type Project, type ResolvedSystem } from "../config/project.js";
import { ConfigError, UsageError } from "../errors.js";
import { exec } from "../host/exec.js";
import { debianArch, hostMirror } from "../host/facts.js";
import { privateAptOptions, type Distro } from "./apt.js";
import { basePackages } from "../steps/rootfs.js";
import { debianStaleness, lockPath, readLock, requestedNames, writeLock, type DebianPin, type DebianRequest, type PinnedDeb } from "./lock.js";

/** A deb822 stanza: field names as written, continuation lines joined with "\n". */
export type Stanza = Record<string, string>;

/** Splits deb822 text (a Packages or Release file, `apt-cache show`) into stanzas. */
export function parseStanzas(text: string): Stanza[] {
  const stanzas: Stanza[] = [];
  for (const block of text.split(/\n[ \t]*\n/)) {
    const stanza: Stanza = {};
    let field: string | undefined;
    for (const line of block.split("\n")) {
      if (/^[ \t]/.test(line) && field !== undefined) stanza[field] += `\n${line.trim()}`;
      else {
        const match = /^([^\s:]+):[ \t]*(.*)$/.exec(line);
        if (match === null) continue;
        field = match[1] as string;
        stanza[field] = (match[2] as string).trimEnd();
      }
    }
    if (Object.keys(stanza).length > 0) stanzas.push(stanza);
  }
  return stanzas;
}

/** The Date of a Release or InRelease file (the OpenPGP armour of an InRelease is skipped). */
export function releaseDate(text: string): string | undefined {
  const body = text.replace(/^-----BEGIN PGP SIGNED MESSAGE-----\n(?:Hash:.*\n)*\n/, "");
  return parseStanzas(body)[0]?.Date;
}

/** What `apt-get -s install` would install: one `Inst name (version …)` line per package. */
export function parseSimulation(stdout: string): { name: string; version: string }[] {
  return [...stdout.matchAll(/^Inst (\S+) (?:\[[^\]]*\] )?\((\S+) /gm)].map(([, name = "", version = ""]) => ({ name: name.replace(/:.*$/, ""), version }));
}

/** A package's pin from its stanza in the archive's Packages file. */
export function pinOf(stanza: Stanza): PinnedDeb {
  const { Package: name, Version: version, SHA256: sha256, Size: size, Filename: filename } = stanza;
  if (!name || !version || !sha256 || !size || !filename) {
    throw new Error(`apt printed a stanza without Package, Version, SHA256, Size or Filename: ${JSON.stringify(stanza)}`);
  }
  return { version, sha256, size: Number(size), filename };
}

/** The linux-image-* package a kernel metapackage depends on (linux-image-amd64 → linux-image-6.1.0-28-amd64). */
export function kernelImageDependency(depends: string | undefined): string | undefined {
  return /(?:^|,\s*)(linux-image-[^\s,(|]+)/.exec(depends ?? "")?.[1];
}

/** The apt pattern mmdebstrap narrows its selections with: the suite and the native architecture. */
function narrowed(distro: Distro, pattern: string): string {
  return `?narrow(?or(?archive(^${distro.suite}$),?codename(^${distro.suite}$)),?architecture(${distro.arch}),${pattern})`;
}

/** Metapackages are followed to the image they depend on, at most this deep. */
const maxIndirections = 3;

/** apt, set up in a private directory with one suite's package lists, answering what a request installs. */
export class DebianResolver {
  private constructor(
    private readonly options: readonly string[],
    private readonly distro: Distro,
    private readonly date: string,
  ) {}

  /** Sets up `dir` for `distro` and downloads its package lists (an error naming the mirror when it cannot). */
  static async create(dir: string, distro: Distro, signal?: AbortSignal): Promise<DebianResolver> {
    const own = [
      "APT::Install-Recommends=false",
      "APT::Install-Suggests=false",
      "Acquire::Languages=none",
      // Some hosts (Docker images) turn apt's binary cache off; each of the several apt runs would then parse the lists anew.
      "Dir::Cache::pkgcache=pkgcache.bin",
      "Dir::Cache::srcpkgcache=srcpkgcache.bin",
    ];
    const options = [...(await privateAptOptions(dir, distro)), ...own.flatMap((o) => ["-o", o])];
    const update = await exec(["apt-get", ...options, "-q", "update"], { nothrow: true, signal });
    const problems = update.stdout.split("\n").concat(update.stderr.split("\n")).filter((l) => /^(E|W|Err):/.test(l.trim()));
    const lists = path.join(dir, "lists");
    const release = (await readdir(lists)).find((f) => /_(In)?Release$/.test(f));
    // apt-get update exits 0 when a download failed and it kept old lists (none here), so its Err lines count too.
    if (update.exitCode !== 0 || problems.some((l) => /^(E|Err):/.test(l.trim())) || release === undefined) {
      throw new ConfigError(
        `apt cannot read the suite ${distro.suite} (${distro.components.join(" ")}, ${distro.arch}) from the Debian mirror ${distro.mirror}:\n${problems.join("\n") || update.stderr.trim()}\n` +
          "Fix: check that this machine reaches the mirror, and distro.mirror, distro.suite and distro.components.",
      );
    }
    const date = releaseDate(await readFile(path.join(lists, release), "utf8"));
    if (date === undefined) throw new ConfigError(`The Release file of ${distro.suite} on ${distro.mirror} has no Date.\nFix: use a Debian mirror (distro.mirror).`);
    return new DebianResolver(options, distro, date);
  }

  /** The stanzas of `name=version` (or the candidate of `name`), one each. */
  private async show(system: string, wanted: readonly string[]): Promise<Stanza[]> {
    const result = await exec(["apt-cache", ...this.options, "show", "--no-all-versions", ...wanted], { nothrow: true });
    if (result.exitCode !== 0) throw this.unresolvable(system, result.stderr);
    return parseStanzas(result.stdout);
  }

  private unresolvable(system: string, stderr: string): ConfigError {
    // apt's errors and notes, and the unmet dependencies it lists (" foo : Depends: bar but …").
    const problems = stderr.split("\n").filter((l) => /^E:|^ +\S+ : |^ {3,}\S/.test(l)).join("\n") || stderr.trim();
    return new ConfigError(
      `The Debian packages of the system \`${system}' cannot be resolved from ${this.distro.suite} (${this.distro.components.join(" ")}, ${this.distro.arch}):\n${problems}\n` +
        "Fix: correct the package names in `packages` (or boot.kernel.debianPackage); `apt-cache policy <name>` shows what a suite has.",
    );
  }

  /** The pinned set of `request`: the root filesystem's packages and, when asked for, Debian's kernel. */
  async resolve(system: string, request: DebianRequest): Promise<DebianPin> {
    const names = requestedNames(request.packages);
    // mmdebstrap installs the essential set first and the rest on top of it;
    // one apt run over both yields the same set (checked on bookworm), and a
    // repository holding only this set leaves apt no other choice at build time.
    const wanted = [narrowed(this.distro, "?essential"), narrowed(this.distro, "?priority(required)"), "apt", ...names];
    // One -q, not two: apt then still lists the unmet dependencies behind a failure.
    const simulation = await exec(["apt-get", ...this.options, "-s", "-q", "install", ...wanted], { nothrow: true });
    if (simulation.exitCode !== 0) throw this.unresolvable(system, `${simulation.stdout}\n${simulation.stderr}`);
    const installs = parseSimulation(simulation.stdout);
    const packages: Record<string, PinnedDeb> = {};
    for (const stanza of await this.show(system, installs.map((p) => `${p.name}=${p.version}`))) packages[stanza.Package as string] = pinOf(stanza);
    const pin: DebianPin = { suite: this.distro.suite, components: [...this.distro.components], arch: this.distro.arch, date: this.date, request: names, packages };
    if (request.kernelPackage === undefined) return pin;
    return { ...pin, kernel: await this.resolveKernel(system, request.kernelPackage) };
  }

  /** Debian's kernel: the package asked for and, through metapackages, the image package holding vmlinuz. */
  private async resolveKernel(system: string, name: string): Promise<NonNullable<DebianPin["kernel"]>> {
    if (!name.startsWith("linux-image-")) {
      throw new ConfigError(`boot.kernel.debianPackage of the system \`${system}' is "${name}", which is not a Debian kernel image package.\nFix: name one like linux-image-amd64 or linux-image-6.1.0-28-amd64.`);
    }
    const packages: Record<string, PinnedDeb> = {};
    let current = name;
    for (let depth = 0; ; depth++) {
      const [stanza] = await this.show(system, [current]).catch(() => []);
      if (stanza === undefined) throw this.unresolvable(system, `E: ${this.distro.suite} has no package ${current}`);
      packages[current] = pinOf(stanza);
      const next = kernelImageDependency(stanza.Depends);
      if (next === undefined) return { package: name, image: current, packages };
      if (depth + 1 >= maxIndirections) throw this.unresolvable(system, `E: ${name} leads through more than ${maxIndirections} kernel metapackages`);
      current = next;
    }
  }
}

/** A system's request, and the mirror to resolve it from (which is not part of the pin). */
export interface SystemRequest {
  readonly request: DebianRequest;
  readonly mirror: string;
}

/**
 * What a system asks Debian for: its packages and keel's base packages, and
 * Debian's kernel (boot.kernel.debianPackage). The kernel is pinned whether
 * or not the system boots it, so that switching to a kernel from source and
 * back is one line of the config, with keel.lock as it is.
 */
export function systemRequest(config: ResolvedSystem): SystemRequest {
  const request: DebianRequest = {
    suite: config.distro.suite,
    components: config.distro.components,
    arch: debianArch(),
    packages: requestedNames([...basePackages, ...config.packages]),
    kernelPackage: config.boot.kernel.debianPackage,
  };
  return { request, mirror: config.distro.mirror ?? hostMirror() };
}

/** What moved between two pins of a system, one line each (nothing when nothing moved). */
export function describeMoves(system: string, before: DebianPin | undefined, after: DebianPin): string[] {
  const all = (pin: DebianPin): Record<string, PinnedDeb> => ({ ...pin.packages, ...pin.kernel?.packages });
  if (before === undefined) {
    const kernel = after.kernel === undefined ? [] : [`${system}: kernel ${after.kernel.image} ${after.kernel.packages[after.kernel.image]?.version ?? ""}`];
    return [`${system}: pinned ${Object.keys(after.packages).length} Debian packages from ${after.suite} (Release of ${after.date})`, ...kernel];
  }
  const [was, now] = [all(before), all(after)];
  const lines: string[] = [];
  for (const name of [...new Set([...Object.keys(was), ...Object.keys(now)])].sort()) {
    const [old, next] = [was[name], now[name]];
    if (old === undefined && next !== undefined) lines.push(`${system}: added ${name} ${next.version}`);
    else if (old !== undefined && next === undefined) lines.push(`${system}: removed ${name} ${old.version}`);
    else if (old !== undefined && next !== undefined && old.version !== next.version) lines.push(`${system}: ${name} ${old.version} → ${next.version}`);
    else if (old !== undefined && next !== undefined && old.sha256 !== next.sha256) {
      lines.push(`${system}: ${name} ${next.version} has other bytes (sha256 ${old.sha256.slice(0, 12)}… → ${next.sha256.slice(0, 12)}…)`);
    }
  }
  return lines;
}

/** Which systems to pin: those keel.lock lacks or pins stale, all, some by name, or those holding a package. */
export type SystemSelection = "missing" | "all" | { readonly systems: readonly string[] } | { readonly package: string };

export interface SystemChange {
  readonly system: string;
  readonly before: DebianPin | undefined;
  readonly after: DebianPin;
}

function selected(selection: SystemSelection, name: string, request: DebianRequest, pin: DebianPin | undefined): boolean {
  if (selection === "missing") return debianStaleness(request, pin) !== undefined;
  if (selection === "all") return true;
  if ("systems" in selection) return selection.systems.includes(name);
  return request.packages.includes(selection.package) || selection.package in (pin?.packages ?? {}) || selection.package in (pin?.kernel?.packages ?? {});
}

/**
 * Resolves the selected systems' Debian packages and writes keel.lock once
 * all resolved (entries of systems the project no longer has go too). Systems
 * on the same suite and mirror share one download of the package lists.
 * `progress` hears what is being resolved. Returns what was resolved.
 */
export async function relockSystems(project: Project, selection: SystemSelection, progress?: (line: string) => void, signal?: AbortSignal): Promise<SystemChange[]> {
  const file = lockPath(project.file);
  const lock = readLock(file);
  const wanted = new Map<string, SystemRequest>();
  for (const name of project.systems.keys()) {
    const request = systemRequest(evaluateSystem(project, name).config);
    if (selected(selection, name, request.request, lock.systems?.[name]?.debian)) wanted.set(name, request);
  }
  if (typeof selection === "object" && "package" in selection && wanted.size === 0) {
    throw new UsageError(
      `No input, system or Debian package of a system is named \`${selection.package}'. Inputs: ${Object.keys(project.inputs).join(", ") || "(none)"}; systems: ${[...project.systems.keys()].join(", ")}.\n` +
        "Fix: name one of those, or a package that a system installs (keel.lock lists them under `systems`).",
    );
  }
  const groups = new Map<string, string[]>();
  for (const [name, { request, mirror }] of wanted) {
    const key = JSON.stringify([mirror, request.suite, request.components, request.arch]);
    groups.set(key, [...(groups.get(key) ?? []), name]);
  }
  const changes: SystemChange[] = [];
  const scratch = await mkdtemp(path.join(os.tmpdir(), "keel-lock-"));
  try {
    for (const names of groups.values()) {
      const { request, mirror } = wanted.get(names[0] as string) as SystemRequest;
      progress?.(`Resolving the Debian packages of ${names.join(", ")} from ${request.suite} at ${mirror}…`);
      const resolver = await DebianResolver.create(path.join(scratch, String(changes.length)), { ...request, mirror }, signal);
      for (const name of names) changes.push({ system: name, before: lock.systems?.[name]?.debian, after: await resolver.resolve(name, (wanted.get(name) as SystemRequest).request) });
    }
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
  const systems = Object.fromEntries(Object.entries(lock.systems ?? {}).filter(([name]) => project.systems.has(name)));
  for (const change of changes) systems[change.system] = { debian: change.after };
  const dropped = Object.keys(lock.systems ?? {}).length !== Object.keys(systems).length;
  if (changes.length > 0 || dropped) await writeLock(file, { ...lock, systems });
  return changes;
}
