// What `keel hardware-config` reads of a machine: one POSIX shell script run
// there (locally or over SSH), read-only, installing nothing, that prints the
// raw facts in sections; and the pure parser of its output. Every fact comes
// from the machine itself: UUIDs from the filesystems' superblocks (blkid -p,
// not a by-uuid link that may be stale), modules from the devices' modaliases
// through that kernel's modules.alias (modprobe -R).

/** The script. Each section starts with a line `@@ name`; a fact it could not read is a line `! why`. */
export const probeScript = String.raw`
export LC_ALL=C PATH=/usr/sbin:/usr/bin:/sbin:/bin
section() { printf '@@ %s\n' "$*"; }
section kernel
printf '%s %s\n' "$(uname -r)" "$(uname -m)"
section firmware
if [ -d /sys/firmware/efi ]; then echo uefi; else echo bios; fi
section virt
if command -v systemd-detect-virt >/dev/null 2>&1; then systemd-detect-virt 2>/dev/null || true; else echo '! systemd-detect-virt is not installed'; fi
section cpu
grep -m1 '^vendor_id' /proc/cpuinfo
grep -m1 '^flags' /proc/cpuinfo
section mountinfo
cat /proc/self/mountinfo
section swaps
tail -n +2 /proc/swaps
aliases=
# Each device from a sysfs path up to the root of /sys/devices that has a modalias, with its driver.
up() {
  u=$1
  while [ "$u" != /sys/devices ] && [ "$u" != / ]; do
    if [ -r "$u/modalias" ]; then
      driver=-
      if [ -e "$u/driver" ]; then driver=$(basename "$(readlink -f "$u/driver")"); fi
      echo "node $(cat "$u/modalias") $driver"
    fi
    u=$(dirname "$u")
  done
}
# The devices of a block device, and those of what it is made of (dm, md; an NVMe namespace's controllers).
nodes() {
  d=$(readlink -f "/sys/class/block/$1")
  if [ -r "$d/dm/uuid" ]; then echo "dm $(cat "$d/dm/uuid")"; fi
  for s in "$d"/slaves/*; do
    if [ -e "$s" ]; then echo "slave $(basename "$s")"; (nodes "$(basename "$s")"); fi
  done
  case $d in
    /sys/devices/virtual/nvme-subsystem/*)
      for c in "$(dirname "$d")"/nvme*; do if [ -L "$c" ]; then up "$(readlink -f "$c")"; fi; done ;;
  esac
  up "$d"
}
for dev in $( (awk '{ for (i = 7; $i != "-"; i++); print $(i + 2) }' /proc/self/mountinfo; tail -n +2 /proc/swaps | awk '{ print $1 }') | grep '^/dev/' | sort -u); do
  section block "$dev"
  real=$(readlink -f "$dev")
  name=$(basename "$real")
  if [ ! -b "$real" ] || [ ! -e "/sys/class/block/$name" ]; then echo "! $dev is not a block device here"; continue; fi
  echo "name $name"
  out=$(blkid -p -o export "$real" 2>&1) && printf '%s\n' "$out" | sed 's/^/blkid /' || echo "! blkid -p $real: $(printf '%s' "$out" | tail -n 1)"
  nodes "$name"
done
section keyboards
for i in /sys/bus/usb/devices/*; do
  if [ -r "$i/bInterfaceClass" ] && [ "$(cat "$i/bInterfaceClass")" = 03 ] && [ "$(cat "$i/bInterfaceProtocol")" = 01 ]; then cat "$i/modalias"; fi
done
section net
for i in /sys/class/net/*; do
  if [ -e "$i/device" ]; then
    driver=-
    if [ -e "$i/device/driver" ]; then driver=$(basename "$(readlink -f "$i/device/driver")"); fi
    echo "$(basename "$i") $driver"
  fi
done
section aliases
if [ ! -r "/lib/modules/$(uname -r)/modules.alias" ]; then
  echo "! /lib/modules/$(uname -r)/modules.alias is missing (a kernel without modules, or one keel cannot see)"
elif ! command -v modprobe >/dev/null 2>&1; then
  echo '! modprobe is not installed (Debian package kmod)'
else
  for dev in /sys/class/block/* /sys/class/nvme/* /sys/bus/usb/devices/*; do
    d=$(readlink -f "$dev")
    while [ "$d" != /sys/devices ] && [ "$d" != / ]; do
      if [ -r "$d/modalias" ]; then cat "$d/modalias"; fi
      d=$(dirname "$d")
    done
  done | sort -u | while read -r alias; do
    printf '%s %s\n' "$alias" "$(modprobe -R "$alias" 2>/dev/null | sort -u | tr '\n' ' ')"
  done
fi
`;

export interface Mount {
  readonly mountPoint: string;
  /** The directory of the filesystem mounted there ("/" unless a bind mount or a btrfs subvolume). */
  readonly root: string;
  readonly fsType: string;
  readonly source: string;
  /** The mount's own options and the filesystem's (superblock) options. */
  readonly options: readonly string[];
}

/** A device on the path from a block device to the machine: its modalias and the driver bound to it. */
export interface DeviceNode {
  readonly modalias: string;
  readonly driver: string | null;
}

export interface BlockDevice {
  /** As mounted (/dev/vda1, /dev/mapper/root). */
  readonly path: string;
  /** The kernel's name (vda1, dm-0). */
  readonly name: string | undefined;
  /** What blkid -p read from the device (UUID, TYPE, LABEL, PART_ENTRY_UUID …), or why it could not. */
  readonly blkid: Readonly<Record<string, string>> | { readonly problem: string };
  /** The device-mapper UUID (CRYPT-LUKS2-… for a LUKS volume). */
  readonly dmUuid: string | undefined;
  /** Its own nodes and those of what it is made of, from the disk up. */
  readonly nodes: readonly DeviceNode[];
  readonly slaves: readonly string[];
  readonly problem: string | undefined;
}

export interface Probe {
  readonly kernel: { readonly release: string; readonly machine: string };
  readonly firmware: "uefi" | "bios";
  /** systemd-detect-virt's answer ("none" on bare metal); undefined when it could not be asked. */
  readonly virt: string | undefined;
  readonly cpu: { readonly vendor: string | undefined; readonly flags: readonly string[] };
  readonly mounts: readonly Mount[];
  /** Swap devices and files, as /proc/swaps names them. */
  readonly swaps: readonly { readonly path: string; readonly type: string }[];
  readonly blocks: ReadonlyMap<string, BlockDevice>;
  /** Modaliases of USB keyboards (boot protocol). */
  readonly keyboards: readonly string[];
  /** Interfaces backed by a device (not lo, bridges or tunnels), with their driver. */
  readonly net: readonly { readonly name: string; readonly driver: string | null }[];
  /** Each modalias the machine's kernel resolves, and its modules; undefined when it could not be asked. */
  readonly aliases: ReadonlyMap<string, readonly string[]> | undefined;
  /** What could not be read, in the script's words, by section. */
  readonly problems: readonly { readonly section: string; readonly text: string }[];
}

/** mountinfo escapes space, tab, newline and backslash as octal. */
function unescapeMount(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

export function parseMountinfo(lines: readonly string[]): Mount[] {
  const mounts: Mount[] = [];
  for (const line of lines) {
    const fields = line.split(" ");
    const separator = fields.indexOf("-", 6);
    if (separator < 0) continue;
    const [fsType = "", source = "", superOptions = ""] = fields.slice(separator + 1);
    mounts.push({
      mountPoint: unescapeMount(fields[4] ?? ""),
      root: unescapeMount(fields[3] ?? ""),
      fsType,
      source: unescapeMount(source),
      options: [...(fields[5] ?? "").split(","), ...superOptions.split(",")].filter((o) => o !== ""),
    });
  }
  return mounts;
}

/** The script's output read back. */
export function parseProbe(output: string): Probe {
  const sections: { name: string; lines: string[] }[] = [];
  for (const line of output.split("\n")) {
    if (line.startsWith("@@ ")) sections.push({ name: line.slice(3), lines: [] });
    else if (line !== "") sections.at(-1)?.lines.push(line);
  }
  const problems: { section: string; text: string }[] = [];
  const body = (name: string): string[] => {
    const lines = sections.find((s) => s.name === name)?.lines ?? [];
    for (const line of lines) if (line.startsWith("! ")) problems.push({ section: name, text: line.slice(2) });
    return lines.filter((l) => !l.startsWith("! "));
  };
  const [release = "", machine = ""] = (body("kernel")[0] ?? "").split(" ");
  const cpuLines = body("cpu");
  const cpuField = (key: string) => cpuLines.find((l) => l.startsWith(key))?.replace(/^[^:]*:\s*/, "");
  const virt = body("virt")[0];
  const blocks = new Map<string, BlockDevice>();
  for (const section of sections.filter((s) => s.name.startsWith("block "))) {
    const path = section.name.slice("block ".length);
    const lines = body(section.name);
    const blkid: Record<string, string> = {};
    const problem = problems.find((p) => p.section === section.name && !p.text.startsWith("blkid"))?.text;
    const blkidProblem = problems.find((p) => p.section === section.name && p.text.startsWith("blkid"))?.text;
    for (const line of lines.filter((l) => l.startsWith("blkid "))) {
      const [key = "", ...value] = line.slice("blkid ".length).split("=");
      blkid[key] = value.join("=");
    }
    const nodes = lines.filter((l) => l.startsWith("node ")).map((l): DeviceNode => {
      const [modalias = "", driver = "-"] = l.slice("node ".length).split(" ");
      return { modalias, driver: driver === "-" ? null : driver };
    });
    blocks.set(path, {
      path,
      name: lines.find((l) => l.startsWith("name "))?.slice("name ".length),
      blkid: blkidProblem !== undefined ? { problem: blkidProblem } : blkid,
      dmUuid: lines.find((l) => l.startsWith("dm "))?.slice("dm ".length),
      nodes,
      slaves: lines.filter((l) => l.startsWith("slave ")).map((l) => l.slice("slave ".length)),
      problem,
    });
  }
  const aliasLines = body("aliases");
  const aliasesAsked = !problems.some((p) => p.section === "aliases");
  return {
    kernel: { release, machine },
    firmware: body("firmware")[0] === "uefi" ? "uefi" : "bios",
    virt: virt === undefined || virt === "" ? undefined : virt,
    cpu: { vendor: cpuField("vendor_id"), flags: (cpuField("flags") ?? "").split(/\s+/).filter((f) => f !== "") },
    mounts: parseMountinfo(body("mountinfo")),
    swaps: body("swaps").map((l) => {
      const [path = "", type = ""] = l.split(/\s+/);
      return { path, type };
    }),
    blocks,
    keyboards: body("keyboards"),
    net: body("net").map((l) => {
      const [name = "", driver = "-"] = l.split(" ");
      return { name, driver: driver === "-" ? null : driver };
    }),
    aliases: aliasesAsked
      ? new Map(
          aliasLines.map((l) => {
            const [alias = "", ...modules] = l.trim().split(" ");
            return [alias, modules.filter((m) => m !== "")];
          }),
        )
      : undefined,
    problems,
  };
}
