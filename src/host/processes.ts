// What /proc says about processes: who is in a process group (to wait until
// a stopped tool and all its children are gone) and who has a file open (to
// name who holds a lock). Zombies do not count: they have exited and closed
// their files, and an init that does not reap them must not make keel wait.
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

export interface ProcessInfo {
  readonly pid: number;
  /** The program's name (/proc/<pid>/comm). */
  readonly name: string;
  readonly group: number;
  /** When it started, in clock ticks since boot: orders processes oldest first. */
  readonly started: number;
}

function processInfo(pid: number): ProcessInfo | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // The name is in parentheses and may itself hold spaces and parentheses.
  const close = stat.lastIndexOf(")");
  const fields = stat.slice(close + 2).split(" ");
  if (fields[0] === "Z" || fields[0] === "X") return undefined;
  return { pid, name: stat.slice(stat.indexOf("(") + 1, close), group: Number(fields[2]), started: Number(fields[19]) };
}

function allPids(): number[] {
  return readdirSync("/proc").flatMap((name) => (/^\d+$/.test(name) ? [Number(name)] : []));
}

/** The live processes of a process group, oldest first. */
export function groupMembers(group: number): ProcessInfo[] {
  try {
    // The common case, cheaply: nobody of the group is left, not even a zombie.
    process.kill(-group, 0);
  } catch {
    return [];
  }
  return allPids()
    .map(processInfo)
    .filter((p): p is ProcessInfo => p !== undefined && p.group === group)
    .sort((a, b) => a.started - b.started);
}

/**
 * The live processes that have `file` open, oldest first, leaving out this
 * process's descriptor `except` (the one waiting) and flock(1) helpers that
 * are only waiting for the lock too.
 */
export function processesWithOpen(file: string, except: number): ProcessInfo[] {
  const found: ProcessInfo[] = [];
  for (const pid of allPids()) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    const opens = fds.some((fd) => {
      if (pid === process.pid && Number(fd) === except) return false;
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`) === file;
      } catch {
        return false;
      }
    });
    const info = opens ? processInfo(pid) : undefined;
    if (info !== undefined && info.name !== "flock") found.push(info);
  }
  return found.sort((a, b) => a.started - b.started);
}
