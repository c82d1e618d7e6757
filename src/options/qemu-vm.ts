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

/** Where the VM variant keeps the project's key for root; sshd reads it in the VM variant only. */
const vmKeys = "keel/vm-authorized-keys";

/**
 * What the VM's sshd prints on the first serial port (keel's console log)
 * once it listens: keel waits for this line before it connects, since every
 * connection made earlier is one QEMU holds and hands sshd at once when it
 * starts (dozens after a slow boot, past sshd's MaxStartups).
 */
export const sshReadyLine = "keel-vm: sshd is listening";

/**
 * The VM module: root may log in with the project's key `sshKey` (its public
 * half, as a file under /etc rather than a user's setting, so that the
 * accounts stay the system's), its sshd says on the console when it
 * listens, and stage 1 finds the VM's disk.
 */
export function vmModule(sshKey: string | null) {
  return defineModule({
    config: ({ config }) => {
      const authorized = sshKey !== null && config.services.openssh.enable;
      return {
        services: { openssh: { authorizedKeysFiles: mkIf(authorized, [`/etc/${vmKeys}/%u`]) } },
        environment: {
          etc: mkIf(authorized, {
            [`${vmKeys}/root`]: { text: `${sshKey}\n` },
            // Debian's ssh.service is Type=notify: ExecStartPost runs once sshd has bound its sockets.
            "systemd/system/ssh.service.d/keel-vm-ready.conf": { text: `[Service]\nExecStartPost=-/bin/sh -c 'echo "${sshReadyLine}" > /dev/ttyS0'\n` },
          }),
        },
        boot: { initrd: { availableKernelModules: ["virtio_pci", diskModules[config.virtualisation.diskInterface]] } },
      };
    },
  });
}
