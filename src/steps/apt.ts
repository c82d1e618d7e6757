// Downloading Debian packages without touching the host's apt state: a private
// apt directory with its own sources list, used by steps that need one package.
import { mkdir, readdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { run, type BuildContext } from "./context.js";

export interface Distro {
  readonly suite: string;
  readonly mirror: string;
  readonly components: readonly string[];
  readonly arch: string;
}

/**
 * apt's options for a private directory `dir` serving `distro`: its own
 * sources list, package lists and an empty dpkg status, so that what apt
 * computes does not depend on what the host has installed or configured.
 * Writes the sources list and the status file.
 */
export async function privateAptOptions(dir: string, distro: Distro): Promise<string[]> {
  await Promise.all(["lists/partial", "cache/archives/partial", "etc"].map((d) => mkdir(path.join(dir, d), { recursive: true })));
  await writeFile(path.join(dir, "etc/sources.list"), `deb ${distro.mirror} ${distro.suite} ${distro.components.join(" ")}\n`);
  await writeFile(path.join(dir, "status"), "");
  return [
    `Dir::Etc::SourceList=${path.join(dir, "etc/sources.list")}`,
    "Dir::Etc::SourceParts=/dev/null",
    "Dir::Etc::Preferences=/dev/null",
    "Dir::Etc::PreferencesParts=/dev/null",
    `Dir::State::Lists=${path.join(dir, "lists")}`,
    `Dir::Cache=${path.join(dir, "cache")}`,
    `Dir::State::status=${path.join(dir, "status")}`,
    `APT::Architecture=${distro.arch}`,
    "Debug::NoLocking=1",
    // As root apt would download as _apt, who cannot write into keel's directory.
    ...(process.getuid?.() === 0 ? ["APT::Sandbox::User=root"] : []),
  ].flatMap((o) => ["-o", o]);
}

export class PrivateApt {
  private constructor(private readonly options: readonly string[]) {}

  /** Sets up `dir` for `distro` and downloads its package lists. */
  static async create(context: BuildContext, dir: string, distro: Distro): Promise<PrivateApt> {
    const options = await privateAptOptions(dir, distro);
    await run(context, ["apt-get", ...options, "-q", "update"]);
    return new PrivateApt(options);
  }

  /** Downloads one package into `into` and returns the .deb's path. */
  async download(context: BuildContext, name: string, into: string): Promise<string> {
    const before = new Set(await readdir(into));
    await run(context, ["apt-get", ...this.options, "-q", "download", name], { cwd: into });
    const deb = (await readdir(into)).find((f) => f.endsWith(".deb") && !before.has(f));
    if (deb === undefined) throw new Error(`apt-get download ${name} left no .deb in ${into}`);
    return path.join(into, deb);
  }
}
