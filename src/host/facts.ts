// Facts about the build host that planning depends on, read once per command.
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import type { ResolvedSystem } from "../config/project.js";
import { ConfigError } from "../errors.js";
import type { HostFacts } from "../plan/plan.js";

export const busyboxPath = "/bin/busybox";
const fallbackMirror = "http://deb.debian.org/debian";

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
  return uris.find((uri) => !/security/.test(uri))?.replace(/\/$/, "") ?? fallbackMirror;
}

function debianArch(): string {
  return ({ x64: "amd64", arm64: "arm64", ia32: "i386" } as Record<string, string>)[process.arch] ?? process.arch;
}

export function hostFacts(config: ResolvedSystem): HostFacts {
  const files: Record<string, string> = {};
  for (const [name, file] of Object.entries(config.environment.etc)) {
    if (file.source === null) continue;
    const hash = hashFile(file.source);
    if (hash === undefined) {
      throw new ConfigError(
        `environment.etc."${name}".source is ${file.source}, which is not a file keel can read.\n` +
          "Fix: correct the path (a relative one is taken from the module that sets it) or use `text`.",
      );
    }
    files[file.source] = hash;
  }
  return { mirror: hostMirror(), arch: debianArch(), busybox: hashFile(busyboxPath) ?? "missing", files };
}
