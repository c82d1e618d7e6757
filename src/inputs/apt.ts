// apt in a private directory, without touching the host's apt state: what
// `keel lock` resolves a system's Debian packages with (see debian.ts).
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";

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
