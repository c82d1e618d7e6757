// OpenSSH's server: the interface (options) and what it means for the system
// (package, units, environment.etc."ssh/sshd_config.d/keel.conf", each user's
// authorized keys in environment.etc."ssh/authorized_keys.d/<user>") side by
// side, as in NixOS's sshd.nix.
import { defineModule } from "../../config/module.js";
import { mkOption } from "../../config/option.js";
import { mkIf } from "../../config/properties.js";
import type { ResolvedSystem } from "../../config/project.js";
import { types } from "../../config/types.js";
import { shellQuote } from "../../host/exec.js";

const settingValue = types.oneOf([types.bool, types.int, types.singleLineStr, types.listOf(types.singleLineStr)]);
const keyword = { description: "an sshd_config keyword (e.g. X11Forwarding)", problem: (n: string) => (/^[A-Za-z][A-Za-z0-9]*$/.test(n) ? undefined : "holds characters other than letters and digits") };

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
      authorizedKeysFiles: mkOption({
        type: types.listOf(types.singleLineStr),
        default: [],
        description:
          "Files sshd reads a user's keys from (%h is the home directory, %u the user). The module adds ~/.ssh/authorized_keys and " +
          "/etc/ssh/authorized_keys.d/%u, where keel writes users.users.<name>.openssh.authorizedKeys.keys; `keel run`'s VM variant adds " +
          "/etc/keel/vm-authorized-keys/%u, where it puts the project's key.",
        example: ["/etc/ssh/extra_keys/%u"],
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
              type: types.nullOr(types.singleLineStr),
              default: null,
              description: "Where sshd looks for a user's keys. `null` means services.openssh.authorizedKeysFiles, space-separated.",
            }),
            HostKey: mkOption({
              type: types.singleLineStr,
              default: "/etc/ssh/ssh_host_ed25519_key",
              description: "The host key sshd offers. keel makes an ed25519 key on first boot (an RSA key takes seconds in a VM without KVM).",
            }),
            PermitRootLogin: mkOption({
              type: types.enum(["yes", "prohibit-password", "forced-commands-only", "no"]),
              default: "prohibit-password",
              description: "Whether root may log in, and how.",
            }),
          },
          types.attrsNamed(keyword, settingValue),
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

/** sshd_config.d/keel.conf: the ports, each setting, where keys are read from. */
function sshdConfig(cfg: ResolvedSystem["services"]["openssh"]): string {
  const { AuthorizedKeysFile, ...settings } = cfg.settings;
  const lines = [
    ...cfg.ports.map((port) => `Port ${port}`),
    ...Object.entries(settings).map(([key, value]) => `${key} ${sshdValue(value)}`),
    `AuthorizedKeysFile ${AuthorizedKeysFile ?? cfg.authorizedKeysFiles.join(" ")}`,
  ];
  return `${lines.join("\n")}\n`;
}

/** Each user's keys, as environment.etc entries sshd reads through /etc/ssh/authorized_keys.d/%u. */
function authorizedKeys(users: ResolvedSystem["users"]["users"]): Record<string, { text: string }> {
  return Object.fromEntries(
    Object.entries(users).flatMap(([name, user]) => {
      const keys = user.openssh.authorizedKeys.keys;
      return keys.length === 0 ? [] : [[`ssh/authorized_keys.d/${name}`, { text: `${keys.join("\n")}\n` }]];
    }),
  );
}

export default defineModule({
  options,
  config: ({ config }) => {
    const cfg = config.services.openssh;
    return mkIf(cfg.enable, {
      packages: ["openssh-server"],
      systemd: {
        services: {
          // Debian's `sshd -t` first checks what sshd checks itself (a second start, under TCG a second), and sshd
          // listens on every address unless ListenAddress names some: then it need not wait for network.target.
          ssh: {
            wantedBy: ["multi-user.target"],
            serviceConfig: { ExecStartPre: "" },
            dropAfter: "ListenAddress" in cfg.settings ? [] : ["network.target"],
          },
          // Host keys are made on the machine's first boot, never baked into the image: early (once the file
          // systems are there, and /tmp, which systemd-tmpfiles empties at boot), beside the rest of the boot.
          "ssh-keygen": {
            description: "Generate SSH host keys",
            wantedBy: ["ssh.service"],
            after: ["local-fs.target", "systemd-tmpfiles-setup.service"],
            before: ["ssh.service", "shutdown.target"],
            unitConfig: { DefaultDependencies: false, Conflicts: "shutdown.target" },
            serviceConfig: { Type: "oneshot" },
            // A key cut short by a power loss (a VM quit before it synced) is made again, not left to fail sshd.
            // The key files are the state's, bound over the generation's (stage 1): written through, never replaced.
            script: [
              `key=${shellQuote(cfg.settings.HostKey)}`,
              'if ! ssh-keygen -l -f "$key" >/dev/null 2>&1; then',
              '  made=$(mktemp -d)',
              '  ssh-keygen -q -t ed25519 -N "" -C "" -f "$made/key"',
              '  cat "$made/key" > "$key" && chmod 600 "$key"',
              '  cat "$made/key.pub" > "$key.pub" && chmod 644 "$key.pub"',
              '  rm -rf "$made"',
              '  sync "$key" "$key.pub"',
              "fi",
            ].join("\n"),
          },
        },
      },
      services: { openssh: { authorizedKeysFiles: [".ssh/authorized_keys", "/etc/ssh/authorized_keys.d/%u"] } },
      environment: {
        // The host key is the machine's, not the generation's: a new generation keeps it.
        persistence: { files: [cfg.settings.HostKey, `${cfg.settings.HostKey}.pub`] },
        // A getter: read only when environment.etc is merged, when this module's own definitions are known.
        get etc() {
          return { "ssh/sshd_config.d/keel.conf": { text: sshdConfig(cfg) }, ...authorizedKeys(config.users.users) };
        },
      },
    });
  },
});
