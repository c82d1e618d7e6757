// Files under /etc, as NixOS's environment.etc: keel's option modules write
// theirs here too (fstab, hostname, hosts, networkd and systemd units,
// sshd_config.d, authorized keys), so `keel eval <system> environment.etc`
// shows every file keel puts into /etc, and `mkForce` replaces one.
import { defineModule } from "../config/module.js";
import { mkOption } from "../config/option.js";
import { types } from "../config/types.js";

const etcFile = types.submodule({
  text: mkOption({
    type: types.nullOr(types.lines),
    default: null,
    description: "The file's contents. Exactly one of `text` and `source` is set.",
  }),
  source: mkOption({
    type: types.nullOr(types.path),
    default: null,
    description: "A file to copy; a relative path is taken from the module that defines it.",
  }),
  mode: mkOption({
    type: types.strWith('file mode in octal (e.g. "0644")', (v) => (/^[0-7]{3,4}$/.test(v) ? undefined : "is not three or four octal digits")),
    default: "0644",
    description: "The file's permissions, in octal.",
    example: "0600",
  }),
});

/** Why a name is not a path inside /etc, if it is not one. */
function etcPathProblem(name: string): string | undefined {
  if (name.startsWith("/")) return "is absolute";
  if (/[\n\r\0]/.test(name)) return "holds a line break or NUL";
  if (name.split("/").some((part) => part === "" || part === "." || part === "..")) return 'has an empty, "." or ".." part';
  return undefined;
}

export const options = {
  environment: {
    etc: mkOption({
      type: types.attrsNamed({ description: 'a path inside /etc, relative (e.g. "ssh/sshd_config.d/local.conf")', problem: etcPathProblem }, etcFile),
      default: {},
      description:
        "Files placed under /etc in the root filesystem, by path relative to /etc. keel's modules write theirs here too (fstab, hostname, units, sshd_config.d/keel.conf); `mkForce` on an entry replaces one.",
      example: { "motd": { text: "Welcome.\n" } },
    }),
  },
};

export default defineModule({
  options,
  config: ({ config }) => ({
    // A getter: environment.etc is read once every module that writes files is known.
    get assertions() {
      return Object.entries(config.environment.etc).map(([name, file]) => ({
        assertion: (file.text === null) !== (file.source === null),
        message: `environment.etc."${name}" must set exactly one of \`text' and \`source'.`,
        option: `environment.etc.${JSON.stringify(name)}`,
      }));
    },
  }),
});
