// How `keel run` boots a system in QEMU. Names follow NixOS's qemu-vm.nix.
import { defineModule } from "../config/module.js";
import { mkOption } from "../config/option.js";
import { types } from "../config/types.js";

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
    diskSize: mkOption({ type: types.ints.positive, default: 4096, description: "The size of the VM's writable disk in MiB." }),
    graphics: mkOption({
      type: types.bool,
      default: false,
      description: "Whether the VM gets a display window. Off: its serial console is attached to the terminal.",
    }),
    forwardPorts: mkOption({
      type: types.listOf(forwardedPort),
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
