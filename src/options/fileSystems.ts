// File systems and swap, and the /etc/fstab they become (environment.etc."fstab").
import { defineModule } from "../config/module.js";
import { mkOption, type ResolvedOf } from "../config/option.js";
import { types } from "../config/types.js";

const fileSystem = types.submodule({
  device: mkOption({
    type: types.nullOr(types.str),
    default: null,
    description: "The device to mount. One of `device` and `label` is set.",
    example: "/dev/disk/by-uuid/3f1c…",
  }),
  label: mkOption({
    type: types.nullOr(types.str),
    default: null,
    description: "The label of the file system to mount (LABEL=…).",
    example: "nixos",
  }),
  fsType: mkOption({
    type: types.strWith("file system type (e.g. ext4)", (v) => (/^[\w.+-]+$/.test(v) ? undefined : "is empty or holds characters other than letters, digits and _ . + -")),
    default: "auto",
    description: "The file system type.",
    example: "ext4",
  }),
  options: mkOption({
    type: types.listOf(types.str),
    default: ["defaults"],
    description: "Mount options.",
    example: ["noatime"],
  }),
});

export const options = {
  fileSystems: mkOption({
    type: types.attrsNamed({ description: 'an absolute mount point (e.g. "/boot")', problem: (n) => (n.startsWith("/") ? undefined : "does not start with /") }, fileSystem),
    default: {},
    description: "File systems to mount, by mount point; they become /etc/fstab.",
    example: { "/": { device: "/dev/disk/by-label/root", fsType: "ext4" } },
  }),
  swapDevices: mkOption({
    type: types.listOf(
      types.submodule({
        device: mkOption({ type: types.str, description: "The swap device or file.", example: "/dev/disk/by-label/swap" }),
      }),
    ),
    default: [],
    description: "Swap devices.",
  }),
};

/**
 * A field of an fstab line: whitespace, a backslash or # would split or end
 * it, so those are written as octal escapes, which mount decodes.
 */
export function fstabField(value: string): string {
  return value.replace(/[\s\\#]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, "0")}`);
}

type Resolved = ResolvedOf<typeof options>;

export function fstab(fileSystems: Resolved["fileSystems"], swapDevices: Resolved["swapDevices"]): string {
  const lines = ["# Written by keel from fileSystems and swapDevices."];
  for (const [mountPoint, fs] of Object.entries(fileSystems).sort(([a], [b]) => a.localeCompare(b))) {
    const spec = fs.label !== null ? `LABEL=${fs.label}` : (fs.device ?? "");
    // Only block devices are checked: a share's tag (9p, virtiofs) is not one.
    const pass = mountPoint === "/" ? "1" : spec.startsWith("/") || spec.startsWith("LABEL=") ? "2" : "0";
    const fields = [spec, mountPoint, fs.fsType, fs.options.join(",") || "defaults"];
    lines.push([...fields.map(fstabField), "0", pass].join("\t"));
  }
  for (const swap of swapDevices) lines.push([fstabField(swap.device), "none", "swap", "sw", "0", "0"].join("\t"));
  return `${lines.join("\n")}\n`;
}

export default defineModule({
  options,
  config: ({ config }) => ({
    environment: {
      etc: {
        fstab: {
          get text() {
            return fstab(config.fileSystems, config.swapDevices);
          },
        },
      },
    },
    assertions: [
      ...Object.entries(config.fileSystems).map(([mountPoint, fs]) => ({
        assertion: (fs.device === null) !== (fs.label === null),
        message: `fileSystems."${mountPoint}" must set exactly one of \`device' and \`label'.`,
        option: `fileSystems."${mountPoint}"`,
      })),
      {
        assertion: config.fileSystems["/"] !== undefined,
        message: `\`fileSystems' does not say where the root file system is. Add fileSystems."/" = { device: "/dev/vda", fsType: "ext4" } (or your machine's device).`,
      },
      {
        // keel's stage 1 has no udev: it finds the root by device node, LABEL or UUID (busybox findfs).
        assertion: !/^\/dev\/disk\/by-(?!label\/|uuid\/)/.test(config.fileSystems["/"]?.device ?? ""),
        message: `fileSystems."/".device is ${JSON.stringify(config.fileSystems["/"]?.device)}, which keel's initrd cannot find (it has no udev). Use a device node (/dev/vda2), /dev/disk/by-uuid/…, /dev/disk/by-label/… or \`label'.`,
        option: `fileSystems."/".device`,
      },
    ],
  }),
});
