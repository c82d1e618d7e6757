// What only `keel run` needs, as NixOS's qemu-vm.nix: this module is not one
// of every system's; `evaluateSystem(project, name, { vm: true })` adds it, and
// only `keel run` (and `keel eval --vm`) evaluate a system so. Its parts are
// files under /etc only (and settings that become them), so the VM variant
// shares the system's root filesystem step and the image adds these files
// (see planSystem).
import { defineModule } from "../config/module.js";
import { mkIf } from "../config/properties.js";

/** Where keel-vm-ssh-key puts the project's key; sshd reads it in the VM variant only. */
const runtimeKeys = "/run/keel/authorized_keys.d";

export default defineModule({
  config: ({ config }) =>
    mkIf(config.services.openssh.enable, {
      services: { openssh: { authorizedKeysFiles: [`${runtimeKeys}/%u`] } },
      systemd: {
        services: {
          // `keel run` passes the project's public key on the kernel command line (keel.ssh_key=<type>:<base64>).
          "keel-vm-ssh-key": {
            description: "Authorize keel's key for root, from the kernel command line",
            before: ["ssh.service"],
            unitConfig: { ConditionKernelCommandLine: "keel.ssh_key" },
            serviceConfig: { Type: "oneshot" },
            script: [
              'for word in $(cat /proc/cmdline); do case "$word" in keel.ssh_key=*) key="${word#keel.ssh_key=}" ;; esac; done',
              `mkdir -p ${runtimeKeys}`,
              `printf '%s\\n' "$key" | tr ':' ' ' > ${runtimeKeys}/root`,
            ].join("\n"),
          },
          // Pulled in by sshd through its drop-in rather than enabled: then the VM variant adds files, and the setup that enables units is the system's.
          ssh: { wants: ["keel-vm-ssh-key.service"] },
        },
      },
    }),
});
