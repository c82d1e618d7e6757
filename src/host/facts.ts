// Facts about the build host that planning depends on, read once per command.
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import type { ResolvedSystem } from "../config/project.js";
import type { HostFacts } from "../plan/plan.js";

export const busyboxPath = "/bin/busybox";
const fallbackMirror = "http://deb.debian.org/debian";

function hashFile(file: string): string {
  try {
    return createHash("sha256").update(readFileSync(file)).digest("hex");
  } catch {
    return "missing";
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
  return uris.find((uri) => !/security/.test(uri))?.replace(/\/$/, "") ?? fallbackMirror;
}

export function debianArch(): string {
  return ({ x64: "amd64", arm64: "arm64", ia32: "i386" } as Record<string, string>)[process.arch] ?? process.arch;
}

export function hostFacts(config: ResolvedSystem): HostFacts {
  const files = Object.fromEntries(
    Object.values(config.environment.etc)
      .flatMap((file) => (file.source === null ? [] : [file.source]))
      .map((source) => [source, hashFile(source)]),
  );
  return { mirror: hostMirror(), arch: debianArch(), busybox: hashFile(busyboxPath), files };
}
