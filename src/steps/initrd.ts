// The initrd step: a small stage 1 made of busybox (static). It loads the
// kernel modules the root file system needs, with their dependencies from the
// kernel's modules.dep, finds the root by device, LABEL, UUID or PARTUUID,
// mounts the generation the kernel command line names with a writable layer
// and the machine's state (initScript), and switch_roots into it.
// Output: initrd.img (gzip-compressed newc cpio).
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
  /**
   * Modules stage 1 loads when the kernel has them, left out when it does not:
   * overlay (keel run's writable layer), and on an ISO the drivers of a CD and
   * a USB stick and the file systems the generation is read through.
   */
  readonly optionalModules: readonly string[];
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

/**
 * Stage 1 (see ARCHITECTURE.md, "The machine layout"). The kernel command
 * line says how the machine boots:
 * - `keel.generation=N` alone (a disk): the root file system is the machine's
 *   (/keel once booted); generation N is its `generations/N`, its state `state/`.
 * - `keel.state=DEVICE` too (`keel run`): the root device is the generation
 *   (the store's image, read-only) and DEVICE holds the state; `tmpfs` keeps
 *   the state in memory.
 * - `keel.loop=FILE` with `keel.state=` (an ISO): the root device is a medium
 *   holding the generation as the file system image FILE.
 * - neither: the root file system is mounted as / (a root keel did not lay out).
 * Over the generation goes a writable layer, `layers/N`, made afresh when N
 * first boots (the layers of other generations go then); then the paths
 * /etc/keel/persistence names are bound from the state. A failure powers the
 * machine off, or on a trial boot (`keel.trial`) reboots it.
 */
export function initScript(slice: InitrdSlice, load: readonly string[]): string {
  const fsType = slice.root?.fsType && slice.root.fsType !== "auto" ? slice.root.fsType : "";
  const options = (slice.root?.options ?? []).filter((o) => o !== "defaults").join(",");
  return `#!/bin/sh
# keel stage 1: load modules, find the root file system, mount the generation with its state, switch to it.
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /run /newroot /keel /generation /hold
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
fail() {
  echo "keel stage 1: $*" >&2
  if grep -qw keel.shell /proc/cmdline; then exec sh; fi
  if grep -qw keel.trial /proc/cmdline; then
    # A trial boot's entry has used its try: the next boot is the previous generation's.
    echo "keel stage 1: rebooting into the previous generation" >&2
    sleep 1
    reboot -f
  fi
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
generation=""
loop=""
for word in $(cat /proc/cmdline); do
  case "$word" in
    keel.state=*) state="\${word#keel.state=}" ;;
    keel.loop=*) loop="\${word#keel.loop=}" ;;
    keel.generation=*) generation="\${word#keel.generation=}" ;;
    root=*) root="\${word#root=}" ;;
    rootfstype=*) fstype="\${word#rootfstype=}" ;;
    rootflags=*) flags="\${word#rootflags=}" ;;
  esac
done
[ -n "$root" ] || fail "no root file system: set fileSystems.\\"/\\" or root= on the kernel command line"
wait_device() {
  for i in $(seq 1 300); do
    case "$1" in
      LABEL=*|UUID=*|PARTUUID=*) found=$(findfs "$1" 2>/dev/null) ;;
      *) found=""; [ -b "$1" ] && found="$1" ;;
    esac
    [ -n "$found" ] && return 0
    sleep 0.1
  done
  fail "the device $1 did not appear in 30 seconds"
}
wait_device "$root"
device="$found"
if [ -z "$state" ] && [ -z "$generation" ]; then
  mount \${fstype:+-t "$fstype"} \${flags:+-o "$flags"} "$device" /newroot || fail "cannot mount $device on /"
  mount --move /dev /newroot/dev 2>/dev/null || umount /dev
  umount /proc /sys
  exec switch_root /newroot /sbin/init
fi
if [ -n "$loop" ]; then
  mkdir -p /medium
  mount -o ro \${fstype:+-t "$fstype"} "$device" /medium || fail "cannot mount the medium $device"
  [ -f "/medium$loop" ] || fail "the medium $device holds no $loop"
  device="/medium$loop"
  fstype=""
fi
if [ -n "$state" ]; then
  mount -o ro \${fstype:+-t "$fstype"} "$device" /generation || fail "cannot mount the generation $device"
  if [ "$state" = tmpfs ]; then
    mount -t tmpfs -o mode=0755 keel /keel || fail "cannot mount a tmpfs for the state"
  else
    wait_device "$state"
    mount -t ext4 "$found" /keel || fail "cannot mount the state disk $found"
  fi
else
  mount \${fstype:+-t "$fstype"} \${flags:+-o "$flags"} "$device" /keel || fail "cannot mount $device"
  [ -d "/keel/generations/$generation" ] || fail "$device holds no generation $generation (it has: $(ls /keel/generations 2>/dev/null | tr '\n' ' '))"
  mount --bind "/keel/generations/$generation" /generation && mount -o remount,bind,ro /generation || fail "cannot mount generation $generation read-only"
fi
layer="/keel/layers/\${generation:-0}"
first=""
if [ ! -d "$layer" ]; then
  # What was written over another generation is not carried to this one (as NixOS's /etc).
  first=yes
  rm -rf /keel/layers
fi
mkdir -p "$layer/upper" "$layer/work" /keel/state
mount -t overlay overlay -o "lowerdir=/generation,upperdir=$layer/upper,workdir=$layer/work" /newroot || fail "cannot mount the writable layer over the generation"
list=/generation/etc/keel/persistence
held=""
if [ -f "$list" ]; then
  # The generation's own paths under the state's directories (the package manager's databases), kept aside first.
  while read -r kind target; do
    [ "$kind" = generation ] && [ -d "/newroot$target" ] || continue
    mkdir -p "/hold$target" && mount --bind "/newroot$target" "/hold$target" && held="$held $target"
  done < "$list"
  while read -r kind target; do
    kept="/keel/state$target"
    case "$kind" in
      directory)
        if [ ! -d "$kept" ]; then
          mkdir -p "$kept"
          [ -d "/generation$target" ] && cp -a "/generation$target/." "$kept/"
        elif [ -n "$first" ] && [ -d "/generation$target" ]; then
          # What a new generation brings that the state lacks joins it; nothing there is overwritten.
          cp -an "/generation$target/." "$kept/"
        fi
        mkdir -p "/newroot$target"
        mount --bind "$kept" "/newroot$target" || fail "cannot bind the state's $target" ;;
      file)
        mkdir -p "\${kept%/*}" "/newroot\${target%/*}"
        if [ "$target" = /etc/machine-id ]; then
          # Made once from the kernel's random UUID, then copied, not bound: systemd takes a mount on /etc/machine-id for a transient id it should commit.
          [ -e "$kept" ] || tr -d - < /proc/sys/kernel/random/uuid > "$kept"
          cp "$kept" /newroot/etc/machine-id
        else
          if [ ! -e "$kept" ]; then
            if [ -s "/generation$target" ]; then cp -a "/generation$target" "$kept"; else : > "$kept"; chmod 600 "$kept"; fi
          fi
          [ -e "/newroot$target" ] || : > "/newroot$target"
          mount --bind "$kept" "/newroot$target" || fail "cannot bind the state's $target"
        fi ;;
    esac
  done < "$list"
  for target in $held; do
    mkdir -p "/newroot$target" && mount --move "/hold$target" "/newroot$target"
  done
fi
# Once booted, /keel is the machine's root file system (or the VM's state disk) and /keel/generation the generation running.
mkdir -p /keel/generation /newroot/keel
mount --move /generation /keel/generation
if [ -n "$loop" ]; then
  mkdir -p /keel/medium && mount --move /medium /keel/medium
fi
mount --move /keel /newroot/keel
mount --move /dev /newroot/dev 2>/dev/null || umount /dev
umount /proc /sys
exec switch_root /newroot /sbin/init
`;
}

/** Which of `names` the kernel in `kernel` (a kernel step's output) has neither as a module nor built in. */
export async function missingModules(kernel: string, names: readonly string[]): Promise<string[]> {
  const release = await kernelRelease(kernel);
  const modules = await readKernelModules(path.join(kernel, "lib/modules", release), release);
  return names.filter((name) => !modules.modules.has(moduleName(name)) && !modules.builtin.has(moduleName(name)));
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
  const selection = selectModules(wanted, modules, slice.optionalModules);
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
  for (const dir of ["bin", "dev", "proc", "sys", "run", "newroot", "keel", "generation", "hold", "etc", "tmp"]) directory(dir);
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
  version: 10,
  build: (_context, out, { slice, inputs }) => buildInitrd(out, inputs.kernel, slice),
});
