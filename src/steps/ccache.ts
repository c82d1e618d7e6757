// ccache set up the way Kbuild needs it, shared by the kernel step, `keel
// shell <system> kernel` and `keel doctor`: one place says how keel compiles.
import path from "node:path";
import { cacheDir } from "../config/load.js";

/** The cache: $KEEL_CCACHE_DIR, else $XDG_CACHE_HOME/keel/ccache; shared by every kernel build of the user. */
export function ccacheDir(env: NodeJS.ProcessEnv): string {
  return env.KEEL_CCACHE_DIR || path.join(cacheDir(env), "ccache");
}

/** The compiler keel builds kernels with, for the kernel and for Kbuild's host programs. */
export const compiler = ["ccache", "gcc"] as const;

/**
 * What makes two builds of the same source and config compile alike: the
 * version string Kbuild compiles in names no date, user or host, and the
 * release has no `+` for a tree that is not a clean git checkout.
 */
export const reproducible = {
  KBUILD_BUILD_TIMESTAMP: "Thu Jan  1 00:00:00 UTC 1970",
  KBUILD_BUILD_USER: "keel",
  KBUILD_BUILD_HOST: "keel",
} as const;

export interface CcacheSetup {
  readonly dir: string;
  /** Absolute paths under it are hashed relative to the working directory: another build directory still hits. */
  readonly baseDir: string;
  /** Each compilation's result (hit, miss, …) is appended here, for this build's hit rate. */
  readonly statsLog: string;
}

/** ccache's configuration as environment variables: the user's ccache.conf cannot change what keel relies on. */
export function ccacheEnv(setup: CcacheSetup): Record<string, string> {
  return {
    CCACHE_DIR: setup.dir,
    CCACHE_BASEDIR: setup.baseDir,
    // The compiler's content, not its mtime: a reinstalled identical gcc still hits.
    CCACHE_COMPILERCHECK: "content",
    // __DATE__/__TIME__ are fixed by KBUILD_BUILD_TIMESTAMP; a fresh checkout's mtimes must not matter.
    CCACHE_SLOPPINESS: "time_macros,include_file_mtime,include_file_ctime,locale",
    CCACHE_STATSLOG: setup.statsLog,
    // Code built with -g (arch/x86/boot, any kernel with debug info) would hash the build directory's path and
    // miss in every other one. Its debug info then names the directory the object was first built in.
    CCACHE_NOHASHDIR: "1",
  };
}

/** Kbuild's ARCH for a Debian architecture: x86's allnoconfig/tinyconfig make a 32-bit kernel unless told x86_64. */
export function kbuildArch(debianArch: string): string {
  return ({ amd64: "x86_64", i386: "i386", arm64: "arm64", armhf: "arm", riscv64: "riscv", ppc64el: "powerpc", s390x: "s390" } as Record<string, string>)[debianArch] ?? debianArch;
}

/** MAKEFLAGS that make every `make` in the environment build as keel does (they count as command-line variables). */
export function kbuildMakeflags(jobs: number, debianArch: string): string {
  const escape = (word: string): string => word.replaceAll(" ", "\\ ");
  return [`-j${jobs}`, `ARCH=${kbuildArch(debianArch)}`, `CC=${escape(compiler.join(" "))}`, `HOSTCC=${escape(compiler.join(" "))}`, "LOCALVERSION="].join(" ");
}

export interface CcacheStats {
  readonly hits: number;
  readonly misses: number;
  /** Calls ccache passed to the compiler without caching (links, probes writing to /dev/null, …). */
  readonly uncacheable: number;
}

/**
 * Counts the results in a ccache stats log: each compilation appends its
 * counters, one per line (`#` lines name the source file). A hit is a direct
 * or preprocessed hit, a miss is `cache_miss`; the finer counters that go with
 * them (direct_cache_miss, local_storage_*, …) are not results of their own.
 */
export function parseStatsLog(text: string): CcacheStats {
  let hits = 0;
  let misses = 0;
  let uncacheable = 0;
  for (const line of text.split("\n")) {
    const counter = line.trim();
    if (counter === "" || counter.startsWith("#")) continue;
    if (counter === "direct_cache_hit" || counter === "preprocessed_cache_hit") hits++;
    else if (counter === "cache_miss") misses++;
    else if (!/^(direct_cache_miss|preprocessed_cache_miss|(local|remote)_storage_\w+|recache)$/.test(counter)) uncacheable++;
  }
  return { hits, misses, uncacheable };
}

export function hitRate(stats: CcacheStats): number {
  const total = stats.hits + stats.misses;
  return total === 0 ? 0 : stats.hits / total;
}

export function describeStats(stats: CcacheStats): string {
  return `ccache ${stats.hits} hits, ${stats.misses} misses, ${(hitRate(stats) * 100).toFixed(1)}% hit rate`;
}
