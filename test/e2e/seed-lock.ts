// The seed's keel.lock for a test project whose system is the seed's qemu
// under another name (with the same packages): its Debian pin applies as it
// is, so the test builds from what keel.lock pins without resolving again.
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const seedLock = fileURLToPath(new URL("../../examples/seed/keel.lock", import.meta.url));

export function writeSeedLock(dir: string, system: string): void {
  const lock = JSON.parse(readFileSync(seedLock, "utf8")) as { systems: Record<string, unknown> };
  lock.systems = { [system]: lock.systems.qemu };
  writeFileSync(path.join(dir, "keel.lock"), `${JSON.stringify(lock, null, 2)}\n`);
}
