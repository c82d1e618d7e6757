// How `keel run` boots a system in QEMU. Names follow NixOS's qemu-vm.nix.
import { defineModule } from "../config/module.js";
import { mkOption, type OptionType } from "../config/option.js";
import { showDefinitions } from "../config/merge.js";
import { showPath } from "../config/show.js";
import { types } from "../config/types.js";
import { ConfigError } from "../errors.js";

const forwardedPort = types.submodule({
  from: mkOption({
    type: types.enum(["host", "guest"]),
    default: "host",
    description: "Which side listens: `host` forwards a host port into the guest.",
  }),
  proto: mkOption({ type: types.enum(["tcp", "udp"]), default: "tcp", description: "The protocol." }),
  host: {
    address: mkOption({
      type: types.str,
      default: "127.0.0.1",
      description: "The host address the forward listens on. Loopback unless you mean to expose the guest.",
    }),
    port: mkOption({ type: types.port, description: "The host port.", example: 2222 }),
  },
  guest: {
    address: mkOption({ type: types.str, default: "", description: "The guest address; empty means the guest's own." }),
    port: mkOption({ type: types.port, description: "The guest port.", example: 22 }),
  },
});

type Forward = NonNullable<(typeof forwardedPort)["_resolved"]>;

/** Where a forward listens: on the host for `from: "host"`, in QEMU's guest network for `from: "guest"`. */
function listener(forward: Forward): { readonly side: string; readonly address: string; readonly port: number; readonly proto: string } {
  return forward.from === "host"
    ? { side: "host", address: forward.host.address, port: forward.host.port, proto: forward.proto }
    : { side: "guest", address: forward.guest.address, port: forward.guest.port, proto: "tcp" };
}

/** "" and 0.0.0.0 listen on every IPv4 address, so they meet any IPv4 address on the same port. */
function overlaps(a: string, b: string): boolean {
  const everyIPv4 = (address: string): boolean => address === "" || address === "0.0.0.0";
  return a === b || (everyIPv4(a) && !b.includes(":")) || (everyIPv4(b) && !a.includes(":"));
}

/** Forwards that listen on one address and port: QEMU would refuse to start, so evaluation refuses first. */
function distinctListeners<I>(type: OptionType<readonly Forward[], I>): OptionType<readonly Forward[], I> {
  return {
    ...type,
    merge: (p, defs) => {
      const forwards = type.merge(p, defs);
      const listeners = forwards.map(listener);
      for (const [i, a] of listeners.entries()) {
        const j = listeners.findIndex((b, k) => k > i && b.side === a.side && b.port === a.port && b.proto === a.proto && overlaps(a.address, b.address));
        if (j === -1) continue;
        // Each definition alone gives its own entries: together they are the whole list, in order.
        const files = defs.flatMap((def) => type.merge(p, [def]).map(() => def.file));
        const both = [i, j].map((n) => ({ file: files[n] as string, value: forwards[n] }));
        const addresses = [...new Set([a.address, listeners[j]?.address])].map((address) => address || "every address").join(" and ");
        throw new ConfigError(
          `Two forwards of \`${showPath(p)}' listen on ${a.side} port ${a.port} (${a.proto}, ${addresses}), which QEMU cannot open twice:\n${showDefinitions(both)}\n` +
            `Fix: give one of them another ${a.side} port.`,
        );
      }
      return forwards;
    },
  };
}

const sharedDirectory = types.submodule({
  source: mkOption({ type: types.path, description: "The host directory; a relative path is taken from the defining module." }),
  target: mkOption({ type: types.str, description: "Where it is mounted in the guest.", example: "/mnt/shared" }),
  readOnly: mkOption({ type: types.bool, default: false, description: "Whether the guest may only read it." }),
  mechanism: mkOption({
    type: types.enum(["9p", "virtiofs"]),
    default: "9p",
    description: "How it is shared: 9p needs nothing on the host; virtiofs needs virtiofsd.",
  }),
});

export const options = {
  virtualisation: {
    memorySize: mkOption({ type: types.ints.positive, default: 1024, description: "The VM's memory in MiB." }),
    cores: mkOption({ type: types.ints.positive, default: 1, description: "The VM's virtual CPUs." }),
    diskSize: mkOption({
      type: types.ints.positive,
      default: 4096,
      description: "The size of the VM's disk in MiB: its state disk, or with `--firmware uefi` the whole disk (the root partition grows to fill it).",
    }),
    diskInterface: mkOption({
      type: types.enum(["virtio", "nvme", "sata"]),
      default: "virtio",
      description: "How the VM's disk is attached with `--firmware uefi` (as the hardware the system stands in for has it); stage 1 gets the module it needs.",
    }),
    emptyDiskImages: mkOption({
      type: types.listOf(
        types.submodule({
          size: mkOption({ type: types.ints.positive, description: "The disk's size in MiB.", example: 8192 }),
          interface: mkOption({ type: types.enum(["virtio", "nvme", "sata"]), default: "virtio", description: "How it is attached." }),
        }),
      ),
      default: [],
      description:
        "Blank disks the VM gets besides its own, kept in keel's state directory until --reset (a disk to install onto from a rescue system). An NVMe disk's serial is keel-empty<N>, so it is /dev/disk/by-id/nvme-QEMU_NVMe_Ctrl_keel-empty<N> in the guest.",
      example: [{ size: 8192, interface: "nvme" }],
    }),
    graphics: mkOption({
      type: types.bool,
      default: false,
      description: "Whether the VM gets a display window. Off: its serial console is attached to the terminal.",
    }),
    forwardPorts: mkOption({
      type: distinctListeners(types.listOf(forwardedPort)),
      default: [],
      description: "Ports forwarded between host and guest (QEMU user networking).",
      example: [{ from: "host", host: { port: 2222 }, guest: { port: 22 } }],
    }),
    sharedDirectories: mkOption({
      type: types.attrsOf(sharedDirectory),
      default: {},
      description: "Host directories mounted in the guest, by a tag name.",
      example: { src: { source: "./src", target: "/mnt/src", readOnly: true } },
    }),
  },
};

/** 9p's mount tags are at most 31 bytes. */
const maxTagLength = 31;

export default defineModule({
  options,
  // Like NixOS's qemu-vm.nix, each shared directory is also a file system of the guest.
  config: ({ config }) => {
    const shares = Object.entries(config.virtualisation.sharedDirectories);
    return {
      fileSystems: Object.fromEntries(
        shares.map(([tag, share]) => [
          share.target,
          {
            device: tag,
            fsType: share.mechanism,
            options: [
              ...(share.mechanism === "9p" ? ["trans=virtio", "version=9p2000.L", "msize=1048576", "cache=loose"] : []),
              share.readOnly ? "ro" : "rw",
              "nofail",
            ],
          },
        ]),
      ),
      assertions: shares.map(([tag]) => ({
        assertion: tag.length <= maxTagLength && /^[\w.-]+$/.test(tag),
        message: `virtualisation.sharedDirectories."${tag}": a share's name is its mount tag: at most ${maxTagLength} letters, digits, '.', '_' or '-'.`,
      })),
    };
  },
});
