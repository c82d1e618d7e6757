// OpenSSH's server: the interface (options) and what it means for the system
// (package, unit, sshd_config drop-in) side by side, as in a NixOS service module.
import { defineModule } from "../../config/module.js";
import { mkOption } from "../../config/option.js";
import { mkIf } from "../../config/properties.js";
import { types } from "../../config/types.js";

const settingValue = types.oneOf([types.bool, types.int, types.str, types.listOf(types.str)]);

export const options = {
  services: {
    openssh: {
      enable: mkOption({ type: types.bool, default: false, description: "Whether to run the OpenSSH server." }),
      ports: mkOption({
        type: types.listOf(types.port),
        default: [22],
        description: "Ports sshd listens on.",
        example: [22, 8022],
      }),
      settings: mkOption({
        type: types.submodule(
          {
            PasswordAuthentication: mkOption({
              type: types.bool,
              default: false,
              description: "Whether passwords are accepted. Off: log in with a key.",
            }),
            KbdInteractiveAuthentication: mkOption({
              type: types.bool,
              default: false,
              description: "Whether keyboard-interactive authentication (e.g. PAM passwords) is accepted.",
            }),
            AuthorizedKeysFile: mkOption({
              type: types.str,
              default: ".ssh/authorized_keys /etc/ssh/authorized_keys.d/%u /run/keel/authorized_keys.d/%u",
              description:
                "Where sshd looks for a user's keys; keel writes users.users.<name>.openssh.authorizedKeys.keys to /etc/ssh/authorized_keys.d/<name>, " +
                "and a VM started by `keel run` gets the project's key for root in /run/keel/authorized_keys.d/root.",
            }),
            HostKey: mkOption({
              type: types.str,
              default: "/etc/ssh/ssh_host_ed25519_key",
              description: "The host key sshd offers. keel makes an ed25519 key on first boot (an RSA key takes seconds in a VM without KVM).",
            }),
            PermitRootLogin: mkOption({
              type: types.enum(["yes", "prohibit-password", "forced-commands-only", "no"]),
              default: "prohibit-password",
              description: "Whether root may log in, and how.",
            }),
          },
          types.attrsOf(settingValue),
        ),
        default: {},
        description: "sshd_config settings, by keyword (freeform: any sshd_config keyword may be set).",
        example: { PermitRootLogin: "no", X11Forwarding: false },
      }),
    },
  },
};

/** An sshd_config line's value: yes/no for booleans, a list space-separated. */
function sshdValue(value: unknown): string {
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (Array.isArray(value)) return value.join(" ");
  return String(value);
}

export default defineModule({
  options,
  config: ({ config }) => {
    const cfg = config.services.openssh;
    return mkIf(cfg.enable, {
      packages: ["openssh-server"],
      systemd: {
        services: {
          ssh: { wantedBy: ["multi-user.target"] },
          // Host keys are made on the machine's first boot, never baked into the image.
          "ssh-keygen": {
            description: "Generate SSH host keys",
            wantedBy: ["ssh.service"],
            before: ["ssh.service"],
            serviceConfig: { Type: "oneshot" },
            // A key cut short by a power loss (a VM quit before it synced) is made again, not left to fail sshd.
            script: [
              "key=/etc/ssh/ssh_host_ed25519_key",
              'if ! ssh-keygen -l -f "$key" >/dev/null 2>&1; then',
              '  rm -f "$key" "$key.pub"',
              '  ssh-keygen -q -t ed25519 -N "" -f "$key"',
              '  sync "$key" "$key.pub"',
              "fi",
            ].join("\n"),
          },
          // `keel run` passes the project's public key on the kernel command line (keel.ssh_key=<type>:<base64>).
          "keel-vm-ssh-key": {
            description: "Authorize keel's key for root, from the kernel command line",
            wantedBy: ["ssh.service"],
            before: ["ssh.service"],
            unitConfig: { ConditionKernelCommandLine: "keel.ssh_key" },
            serviceConfig: { Type: "oneshot" },
            script: [
              'for word in $(cat /proc/cmdline); do case "$word" in keel.ssh_key=*) key="${word#keel.ssh_key=}" ;; esac; done',
              "mkdir -p /run/keel/authorized_keys.d",
              "printf '%s\\n' \"$key\" | tr ':' ' ' > /run/keel/authorized_keys.d/root",
            ].join("\n"),
          },
        },
      },
      environment: {
        etc: {
          "ssh/sshd_config.d/keel.conf": {
            get text() {
              const lines = [
                ...cfg.ports.map((port) => `Port ${port}`),
                ...Object.entries(cfg.settings).map(([key, value]) => `${key} ${sshdValue(value)}`),
              ];
              return `${lines.join("\n")}\n`;
            },
          },
        },
      },
    });
  },
});
