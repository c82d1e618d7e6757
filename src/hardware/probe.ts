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
if command -v systemd-detect-virt >/dev/null 2>&1; then
  echo "vm $(systemd-detect-virt --vm 2>/dev/null)"
  echo "container $(systemd-detect-virt --container 2>/dev/null)"
else
  echo '! systemd-detect-virt is not installed'
fi
section cpu
grep -m1 '^vendor_id' /proc/cpuinfo
grep -m1 '^flags' /proc/cpuinfo
section mountinfo
cat /proc/self/mountinfo
section swaps
tail -n +2 /proc/swaps
# Whether a path is a device under /sys/devices (a glob that matched nothing resolves to no such path).
under() { case $1 in /sys/devices/?*) true ;; *) false ;; esac; }
# Each device from a sysfs path up to the root of /sys/devices that has a modalias, with its driver.
up() {
  u=$1
  while under "$u"; do
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
# Each mounted device with the major:minor mountinfo gives it (a root the kernel mounted itself is /dev/root, a name with no node), and swap.
( awk '{ for (i = 7; $i != "-"; i++); print $(i + 2), $3 }' /proc/self/mountinfo; tail -n +2 /proc/swaps | awk '{ print $1, "-" }' ) | grep '^/dev/' | sort -u -k1,1 | while read -r dev majmin; do
  section block "$dev"
  real=$(readlink -f "$dev")
  if [ ! -b "$real" ] && [ -e "/sys/dev/block/$majmin" ]; then real=/dev/$(basename "$(readlink -f "/sys/dev/block/$majmin")"); fi
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
# The PCI and USB devices a driver is bound to: the driver's module, the device's address, what it is.
bound() {
  for d in /sys/bus/pci/devices/* /sys/bus/usb/devices/*; do
    if [ -e "$d/driver/module" ]; then echo "$(basename "$(readlink -f "$d/driver/module")") $d"; fi
  done
}
section devices
bound | while read -r module d; do
  id=$(basename "$d")
  if [ -r "$d/vendor" ]; then
    what="pci $(sed 's/^0x//' "$d/vendor"):$(sed 's/^0x//' "$d/device")"
    if command -v lspci >/dev/null 2>&1; then what="$what $(lspci -s "$id" 2>/dev/null | cut -d ' ' -f 2-)"; fi
  else
    u=$(readlink -f "$d")
    if [ ! -r "$u/idVendor" ]; then u=$(dirname "$u"); fi
    what="usb $(cat "$u/idVendor" 2>/dev/null):$(cat "$u/idProduct" 2>/dev/null) $(cat "$u/product" 2>/dev/null)"
  fi
  echo "$module $id $what"
done
# The firmware files the bound drivers name (modinfo) that the machine has, with the package that holds each,
# and the firmware loads the kernel logged as failed.
section firmware-files
if ! command -v modinfo >/dev/null 2>&1; then
  echo '! modinfo is not installed (Debian package kmod)'
else
  release=$(uname -r)
  bound | cut -d ' ' -f 1 | sort -u | while read -r module; do
    modinfo -F firmware "$module" 2>/dev/null | sort -u | while read -r file; do
      for f in "/lib/firmware/updates/$release/$file" "/lib/firmware/updates/$file" "/lib/firmware/$release/$file" "/lib/firmware/$file"; do
        for x in "" .xz .zst; do
          if [ -e "$f$x" ]; then
            owner=$( (dpkg -S "$f$x" || dpkg -S "/usr$f$x") 2>/dev/null | head -n 1 | cut -d : -f 1)
            section=$(dpkg-query -s "$owner" 2>/dev/null | sed -n 's/^Section: //p')
            echo "have $module $file $owner $section" | awk '{ print $1, $2, $3, ($4 == "" ? "-" : $4), ($5 == "" ? "-" : $5) }'
            break 2
          fi
        done
      done
    done
  done
fi
dmesg 2>/dev/null | sed -n -e 's/^\[[^]]*\] *\([^ ]*\) \([^ ]*\): Direct firmware load for \([^ ]*\) failed.*/failed \1 \2 \3/p' \
  -e 's/^\[[^]]*\] *\([^ ]*\) \([^ ]*\): firmware: failed to load \([^ ]*\) .*/failed \1 \2 \3/p' | sort -u
section microcode
for p in intel-microcode amd64-microcode; do
  printf '%s %s\n' "$p" "$( (apt-cache show --no-all-versions "$p" || dpkg-query -s "$p") 2>/dev/null | sed -n 's/^Section: //p' | head -n 1)"
done
section aliases
if [ ! -r "/lib/modules/$(uname -r)/modules.alias" ]; then
  echo "! /lib/modules/$(uname -r)/modules.alias is missing (a kernel without modules, or one keel cannot see)"
elif ! command -v modprobe >/dev/null 2>&1; then
  echo '! modprobe is not installed (Debian package kmod)'
else
  for dev in /sys/class/block/* /sys/class/nvme/* /sys/bus/usb/devices/*; do
    d=$(readlink -f "$dev")
    while under "$d"; do
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
  /** systemd-detect-virt --vm's answer ("none" on bare metal); undefined when it could not be asked. */
  readonly virt: string | undefined;
  /** systemd-detect-virt --container's answer (docker, lxc, systemd-nspawn …) when the probe ran in a container. */
  readonly container: string | undefined;
  readonly cpu: { readonly vendor: string | undefined; readonly flags: readonly string[] };
  readonly mounts: readonly Mount[];
  /** Swap devices and files, as /proc/swaps names them. */
  readonly swaps: readonly { readonly path: string; readonly type: string }[];
  readonly blocks: ReadonlyMap<string, BlockDevice>;
  /** Modaliases of USB keyboards (boot protocol). */
  readonly keyboards: readonly string[];
  /** Interfaces backed by a device (not lo, bridges or tunnels), with their driver. */
  readonly net: readonly { readonly name: string; readonly driver: string | null }[];
  /** The PCI and USB devices a driver is bound to. */
  readonly devices: readonly { readonly module: string; readonly id: string; readonly what: string }[];
  /** The bound drivers' firmware files the machine has (undefined when modinfo could not be asked), and the loads the kernel logged as failed. */
  readonly firmwareFiles: {
    readonly have: readonly { readonly module: string; readonly file: string; readonly owner: string | null; readonly section: string | null }[] | undefined;
    readonly failed: readonly { readonly driver: string; readonly device: string; readonly file: string }[];
  };
  /** The Debian archive section (e.g. non-free-firmware/admin) of each microcode package, as the machine's apt or dpkg knows it; null when neither does. */
  readonly microcode: ReadonlyMap<string, string | null>;
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
  const virtLines = body("virt");
  const detected = (kind: string) => virtLines.find((l) => l.startsWith(`${kind} `))?.slice(kind.length + 1).trim() || undefined;
  const container = detected("container");
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
  const dash = (field: string | undefined): string | null => (field === undefined || field === "-" || field === "" ? null : field);
  const firmwareLines = body("firmware-files");
  const aliasLines = body("aliases");
  const aliasesAsked = !problems.some((p) => p.section === "aliases");
  return {
    kernel: { release, machine },
    firmware: body("firmware")[0] === "uefi" ? "uefi" : "bios",
    virt: detected("vm"),
    container: container === "none" ? undefined : container,
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
    devices: body("devices").map((l) => {
      const [module = "", id = "", ...what] = l.split(" ");
      return { module, id, what: what.join(" ").trim() };
    }),
    firmwareFiles: {
      have: problems.some((p) => p.section === "firmware-files")
        ? undefined
        : firmwareLines.filter((l) => l.startsWith("have ")).map((l) => {
            const [, module = "", file = "", owner, section] = l.split(" ");
            return { module, file, owner: dash(owner), section: dash(section) };
          }),
      failed: firmwareLines.filter((l) => l.startsWith("failed ")).map((l) => {
        const [, driver = "", device = "", file = ""] = l.split(" ");
        return { driver, device, file };
      }),
    },
    microcode: new Map(
      body("microcode").map((l) => {
        const [name = "", section] = l.trim().split(" ");
        return [name, dash(section)];
      }),
    ),
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
