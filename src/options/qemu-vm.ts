// What only `keel run` needs, as NixOS's qemu-vm.nix: this module is not one
// of every system's; `evaluateSystem(project, name, { vm: { sshKey } })` adds
// it, and only `keel run` (and `keel eval --vm`) evaluate a system so. Its
// parts are files under /etc and the initrd's modules for the VM's disk, so
// the VM variant shares the system's root filesystem step and its image adds
// these files (see planSystem).
import { defineModule } from "../config/module.js";
import { mkIf } from "../config/properties.js";

/** The kernel module each of QEMU's disk interfaces needs in stage 1. */
const diskModules = { virtio: "virtio_blk", nvme: "nvme", sata: "ahci" } as const;

/** The VM module: root may log in with the project's key `sshKey` (its public half), the VM's disk is found by stage 1. */
export function vmModule(sshKey: string | null) {
  return defineModule({
    config: ({ config }) => ({
      users: { users: { root: { openssh: { authorizedKeys: { keys: mkIf(sshKey !== null && config.services.openssh.enable, sshKey === null ? [] : [sshKey]) } } } } },
      boot: { initrd: { availableKernelModules: ["virtio_pci", diskModules[config.virtualisation.diskInterface]] } },
    }),
  });
}
