// The machine layout's options (see src/image/layout.ts and ARCHITECTURE.md):
// which paths are the machine's state rather than the generation's, written
// to /etc/keel/persistence for stage 1, and the first boot's growing of the
// root partition to fill its disk.
import { defineModule } from "../config/module.js";
import { mkOption } from "../config/option.js";
import { mkDefault, mkIf } from "../config/properties.js";
import { types } from "../config/types.js";
import { labelProblems } from "../image/layout.js";

const absolutePath = types.strWith('absolute path (e.g. "/var/lib/app")', (v) =>
  !v.startsWith("/") || v === "/" ? "is not an absolute path below /" : /\s/.test(v) ? "holds white space" : v.split("/").slice(1).some((p) => p === "" || p === "." || p === "..") ? 'has an empty, "." or ".." part' : undefined,
);

export const options = {
  environment: {
    persistence: {
      directories: mkOption({
        type: types.listOf(absolutePath),
        default: [],
        description:
          "Directories that are the machine's state: they outlive generations (bound from /keel/state). keel's modules list /var, /home, /root and /srv; add your own. Anything else written outside them is lost when another generation boots.",
        example: ["/etc/NetworkManager/system-connections"],
      }),
      files: mkOption({
        type: types.listOf(absolutePath),
        default: [],
        description: "Single files that are the machine's state (keel's modules list /etc/machine-id and the SSH host keys).",
        example: ["/etc/adjtime"],
      }),
      generation: mkOption({
        type: types.listOf(absolutePath),
        default: [],
        description:
          "Paths inside the state's directories that belong to the generation instead: the package manager's databases (dpkg's status, apt's lists, debconf), so that what is installed is what the generation says.",
        example: ["/var/lib/app/schema"],
      }),
    },
  },
  boot: {
    growPartition: mkOption({
      type: types.bool,
      default: true,
      description: "Whether the root partition and its file system grow to fill the disk on boot (an image written to a larger disk).",
    }),
  },
};

/** /etc/keel/persistence: one `<kind> <path>` per line, the kinds stage 1 reads. */
function persistenceList(persistence: { readonly directories: readonly string[]; readonly files: readonly string[]; readonly generation: readonly string[] }): string {
  const unique = (paths: readonly string[]) => [...new Set(paths)];
  return [
    ...unique(persistence.directories).map((p) => `directory ${p}`),
    ...unique(persistence.files).map((p) => `file ${p}`),
    ...unique(persistence.generation).map((p) => `generation ${p}`),
    "",
  ].join("\n");
}

export default defineModule({
  options,
  config: ({ config }) => ({
    // The layout's file systems carry the labels the config finds them by, or the system is refused (not truncated).
    assertions: labelProblems(config).map((problem) => ({ assertion: false, ...problem })),
    // Stage 1 lays a writable layer over every generation: a kernel keel builds has overlayfs (a config may make it a module).
    boot: { kernel: { settings: mkIf(config.boot.kernel.source !== null, { OVERLAY_FS: mkDefault("y") }) } },
    environment: {
      persistence: {
        directories: ["/var", "/home", "/root", "/srv"],
        files: ["/etc/machine-id"],
        generation: ["/var/lib/dpkg", "/var/lib/apt", "/var/cache/apt", "/var/cache/debconf", "/var/lib/ucf", "/var/lib/systemd/deb-systemd-helper-enabled", "/var/lib/systemd/deb-systemd-helper-masked"],
      },
      get etc() {
        return {
          "keel/persistence": { text: persistenceList(config.environment.persistence) },
          ...(config.boot.growPartition ? { "keel/repart.d/50-root.conf": { text: "[Partition]\nType=root\n" } } : {}),
        };
      },
    },
    systemd: {
      services: {
        // e2fsprogs' reaper of e2scrub's LVM snapshots: a keel machine's ext4 is on no LVM volume; seconds of a boot under TCG.
        e2scrub_reap: { enable: mkDefault(false) },
        "keel-grow-root": mkIf(config.boot.growPartition, {
          description: "Grow the root partition and its file system to fill the disk",
          wantedBy: ["multi-user.target"],
          // Only a partition grows: under `keel run` (keel.state=) /keel is the VM's state disk, already its size, or memory.
          unitConfig: { ConditionPathIsMountPoint: "/keel", ConditionKernelCommandLine: "!keel.state" },
          serviceConfig: { Type: "oneshot" },
          script: [
            "device=$(findmnt -no SOURCE /keel)",
            'disk=$(lsblk -no PKNAME "$device")',
            '[ -n "$disk" ] || exit 0',
            'systemd-repart --dry-run=no --definitions=/etc/keel/repart.d "/dev/$disk"',
            'resize2fs "$device"',
          ].join("\n"),
        }),
      },
    },
  }),
});
