// The initrd step: a small stage 1 made of busybox (static). It loads the
// kernel modules the root file system needs, with their dependencies from the
// kernel's modules.dep, finds the root by device, LABEL or UUID, and
// switch_roots into it. Output: initrd.img (gzip-compressed newc cpio).
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { closest } from "../config/tree.js";
import { ConfigError } from "../errors.js";
import { busyboxPath } from "../host/facts.js";
import { shellQuote } from "../host/exec.js";
import { cpioArchive, type CpioEntry } from "./cpio.js";
import { kernelRelease } from "./kernel.js";
import { defineStep } from "./step.js";

export interface InitrdSlice {
  readonly availableKernelModules: readonly string[];
  readonly kernelModules: readonly string[];
  readonly root: { readonly device: string | null; readonly label: string | null; readonly fsType: string; readonly options: readonly string[] } | null;
  /** The sha256 of the busybox binary stage 1 is made of. */
  readonly busybox: string;
}

/** A module's name as modprobe compares them: no directory, no suffix, `-` as `_`. */
function moduleName(file: string): string {
  return path.basename(file).replace(/\.ko(\.(xz|zst|gz))?$/, "").replaceAll("-", "_");
}

/** modules.dep as a map from module name to its file and the files it depends on. */
export function parseModulesDep(text: string): Map<string, { file: string; depends: string[] }> {
  const modules = new Map<string, { file: string; depends: string[] }>();
  for (const line of text.split("\n")) {
    const [file, rest] = line.split(":");
    if (!file || rest === undefined) continue;
    modules.set(moduleName(file), { file, depends: rest.trim().split(/\s+/).filter(Boolean) });
  }
  return modules;
}

/** modules.softdep: the modules (or aliases) to load before each module. */
export function parseSoftdeps(text: string): Map<string, string[]> {
  const soft = new Map<string, string[]>();
  for (const line of text.split("\n")) {
    const match = /^softdep\s+(\S+)\s+(.*)$/.exec(line);
    if (!match?.[1] || match[2] === undefined) continue;
    const pre = /pre:\s*([^:]*?)(?:\s+post:|$)/.exec(match[2])?.[1]?.trim().split(/\s+/).filter(Boolean) ?? [];
    soft.set(moduleName(match[1]), pre);
  }
  return soft;
}

/** modules.alias: alias → the modules that provide it. */
export function parseAliases(text: string): Map<string, string[]> {
  const aliases = new Map<string, string[]>();
  for (const line of text.split("\n")) {
    const match = /^alias\s+(\S+)\s+(\S+)$/.exec(line);
    if (!match?.[1] || !match[2]) continue;
    aliases.set(match[1], [...(aliases.get(match[1]) ?? []), moduleName(match[2])]);
  }
  return aliases;
}

export interface KernelModules {
  readonly release: string;
  readonly modules: ReadonlyMap<string, { file: string; depends: string[] }>;
  readonly builtin: ReadonlySet<string>;
  readonly softdeps: ReadonlyMap<string, readonly string[]>;
  readonly aliases: ReadonlyMap<string, readonly string[]>;
}

export interface ModuleSelection {
  /** Module files to include, relative to lib/modules/<release>. */
  readonly files: readonly string[];
  /** Module names in the order stage 1 loads them: soft dependencies first. */
  readonly load: readonly string[];
}

/**
 * What the initrd needs for `wanted`: their files with dependencies, and soft
 * dependencies (ext4 wants crc32c first). Built-in modules need nothing. An
 * unknown name is an error naming the option.
 */
export function selectModules(
  wanted: readonly { readonly option: string; readonly name: string }[],
  kernel: KernelModules,
  optional: readonly string[] = [],
): ModuleSelection {
  const files = new Set<string>();
  const load: string[] = [];
  const add = (name: string, required: { option: string } | undefined): void => {
    const normal = name.replaceAll("-", "_");
    if (kernel.builtin.has(normal) || load.includes(normal)) return;
    const module = kernel.modules.get(normal);
    if (module === undefined) {
      const provided = kernel.aliases.get(name);
      if (provided !== undefined && required === undefined) {
        for (const provider of provided) add(provider, undefined);
        return;
      }
      if (required === undefined) return;
      const suggestion = closest(normal, [...kernel.modules.keys(), ...kernel.builtin]);
      throw new ConfigError(
        `${required.option} names the kernel module \`${name}', which kernel ${kernel.release} does not have.\n` +
          (suggestion ? `Did you mean \`${suggestion}'?\n` : "") +
          `Fix: correct the name in ${required.option}, or build a kernel that has it.`,
      );
    }
    for (const dependency of [module.file, ...module.depends]) {
      const depName = moduleName(dependency);
      for (const soft of kernel.softdeps.get(depName) ?? []) add(soft, undefined);
    }
    for (const file of [module.file, ...module.depends]) files.add(file);
    load.push(normal);
  };
  for (const { option, name } of wanted) add(name, { option });
  for (const name of optional) add(name, undefined);
  return { files: [...files].sort(), load };
}

/** The root device as busybox's findfs and mount take it. */
export function rootSpec(root: InitrdSlice["root"]): string {
  if (root === null) return "";
  if (root.label !== null) return `LABEL=${root.label}`;
  const device = root.device ?? "";
  const byName = /^\/dev\/disk\/by-(label|uuid)\/(.+)$/.exec(device);
  return byName ? `${byName[1]?.toUpperCase()}=${byName[2]}` : device;
}

export function initScript(slice: InitrdSlice, load: readonly string[]): string {
  const fsType = slice.root?.fsType && slice.root.fsType !== "auto" ? slice.root.fsType : "";
  const options = (slice.root?.options ?? []).filter((o) => o !== "defaults").join(",");
  return `#!/bin/sh
# keel stage 1: load modules, mount the root file system, switch to it.
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /run /newroot
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
fail() {
  echo "keel stage 1: $*" >&2
  if grep -qw keel.shell /proc/cmdline; then exec sh; fi
  echo "keel stage 1: powering off (add keel.shell to the kernel command line for a shell)" >&2
  sleep 1
  poweroff -f
}
for module in ${load.map(shellQuote).join(" ")}; do
  modprobe "$module" 2>/dev/null || echo "keel stage 1: could not load $module" >&2
done
root=${shellQuote(rootSpec(slice.root))}
fstype=${shellQuote(fsType)}
flags=${shellQuote(options)}
state=""
for word in $(cat /proc/cmdline); do
  case "$word" in
    keel.state=*) state="\${word#keel.state=}" ;;
    root=*) root="\${word#root=}" ;;
    rootfstype=*) fstype="\${word#rootfstype=}" ;;
    rootflags=*) flags="\${word#rootflags=}" ;;
  esac
done
[ -n "$root" ] || fail "no root file system: set fileSystems.\\"/\\" or root= on the kernel command line"
device=""
for i in $(seq 1 300); do
  case "$root" in
    LABEL=*|UUID=*) device=$(findfs "$root" 2>/dev/null) ;;
    *) [ -b "$root" ] && device="$root" ;;
  esac
  [ -n "$device" ] && break
  sleep 0.1
done
[ -n "$device" ] || fail "the root device $root did not appear in 30 seconds"
if [ -n "$state" ]; then
  # keel run: the system image is read-only; the VM's own disk holds its changes (overlayfs).
  mkdir -p /lower /state
  mount -o ro \${fstype:+-t "$fstype"} "$device" /lower || fail "cannot mount $device"
  for i in $(seq 1 50); do [ -b "$state" ] && break; sleep 0.1; done
  mount -t ext4 "$state" /state || fail "cannot mount the VM's disk $state"
  mkdir -p /state/upper /state/work
  mount -t overlay overlay -o lowerdir=/lower,upperdir=/state/upper,workdir=/state/work /newroot || fail "cannot mount the overlay on /"
else
  mount \${fstype:+-t "$fstype"} \${flags:+-o "$flags"} "$device" /newroot || fail "cannot mount $device on /"
fi
mount --move /dev /newroot/dev 2>/dev/null || umount /dev
umount /proc /sys
exec switch_root /newroot /sbin/init
`;
}

async function readKernelModules(moduleDir: string, release: string): Promise<KernelModules> {
  const read = (name: string) => readFile(path.join(moduleDir, name), "utf8").catch(() => "");
  return {
    release,
    modules: parseModulesDep(await read("modules.dep")),
    builtin: new Set((await read("modules.builtin")).split("\n").filter(Boolean).map(moduleName)),
    softdeps: parseSoftdeps(await read("modules.softdep")),
    aliases: parseAliases(await read("modules.alias")),
  };
}

async function buildInitrd(out: string, kernel: string, slice: InitrdSlice): Promise<void> {
  const release = await kernelRelease(kernel);
  const moduleDir = path.join(kernel, "lib/modules", release);
  const modules = await readKernelModules(moduleDir, release);
  const wanted = [
    ...slice.kernelModules.map((name) => ({ option: "boot.initrd.kernelModules", name })),
    ...slice.availableKernelModules.map((name) => ({ option: "boot.initrd.availableKernelModules", name })),
  ];
  // overlay: for keel.state= (keel run); not every kernel has it as a module.
  const selection = selectModules(wanted, modules, ["overlay"]);
  const included = new Set(selection.files);
  const dep = [...modules.modules.values()]
    .filter((m) => included.has(m.file))
    .map((m) => `${m.file}: ${m.depends.join(" ")}`.trimEnd())
    .join("\n");

  const entries: CpioEntry[] = [];
  const directories = new Set<string>();
  const directory = (dir: string): void => {
    if (dir === "" || dir === "." || directories.has(dir)) return;
    directory(path.dirname(dir));
    directories.add(dir);
    entries.push({ kind: "directory", path: dir });
  };
  for (const dir of ["bin", "dev", "proc", "sys", "run", "newroot", "etc", "tmp"]) directory(dir);
  entries.push({ kind: "file", path: "init", data: Buffer.from(initScript(slice, selection.load)), mode: 0o755 });
  entries.push({ kind: "file", path: "bin/busybox", data: await readFile(busyboxPath), mode: 0o755 });
  entries.push({ kind: "symlink", path: "bin/sh", target: "busybox" });
  const base = `lib/modules/${release}`;
  directory(base);
  for (const file of selection.files) {
    directory(path.join(base, path.dirname(file)));
    entries.push({ kind: "file", path: path.join(base, file), data: await readFile(path.join(moduleDir, file)) });
  }
  entries.push({ kind: "file", path: `${base}/modules.dep`, data: Buffer.from(dep ? `${dep}\n` : "") });
  await writeFile(path.join(out, "initrd.img"), cpioArchive(entries));
}

export const initrdStep = defineStep<InitrdSlice, "kernel">({
  kind: "initrd",
  version: 4,
  build: (_context, out, { slice, inputs }) => buildInitrd(out, inputs.kernel, slice),
});
