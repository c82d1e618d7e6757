import { defineModule } from "../config/module.js";
import { mkOption } from "../config/option.js";
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
  fsType: mkOption({ type: types.str, default: "auto", description: "The file system type.", example: "ext4" }),
  options: mkOption({
    type: types.listOf(types.str),
    default: ["defaults"],
    description: "Mount options.",
    example: ["noatime"],
  }),
});

export const options = {
  fileSystems: mkOption({
    type: types.attrsOf(fileSystem),
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

export default defineModule({
  options,
  config: ({ config }) => ({
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
