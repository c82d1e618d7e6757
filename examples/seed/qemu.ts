// A minimal VM guest (the flake's qemu.nix with qemu-vm.nix imported).
// `keel run qemu` boots it; `ssh -p 2222 localhost` reaches its sshd.
import { defineModule } from "keel";
import common from "./common";
import { kernels } from "./kernels";

export default defineModule({
  imports: [common, kernels.debian],
  boot: {
    kernelParams: ["console=ttyS0"],
    initrd: { availableKernelModules: ["virtio_pci", "virtio_blk", "virtio_net", "ext4"] },
  },
  fileSystems: { "/": { device: "/dev/vda", fsType: "ext4" } },
  virtualisation: {
    memorySize: 1024,
    cores: 2,
    graphics: false,
    forwardPorts: [{ from: "host", host: { port: 2222 }, guest: { port: 22 } }],
  },
});
