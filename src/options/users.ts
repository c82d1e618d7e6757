import { defineModule } from "../config/module.js";
import { mkOption } from "../config/option.js";
import { types } from "../config/types.js";

const user = types.submodule({
  uid: mkOption({ type: types.nullOr(types.ints.unsigned), default: null, description: "The user's id; `null` picks a free one.", example: 1000 }),
  isNormalUser: mkOption({
    type: types.bool,
    default: false,
    description: "Whether this is a person's account: a home directory, a uid from 1000 and a login shell.",
  }),
  description: mkOption({ type: types.str, default: "", description: "The user's full name (GECOS)." }),
  group: mkOption({ type: types.nullOr(types.str), default: null, description: "The primary group; `null` gives the user a group of its own." }),
  extraGroups: mkOption({ type: types.listOf(types.str), default: [], description: "Other groups the user is in.", example: ["wheel", "kvm"] }),
  home: mkOption({ type: types.nullOr(types.str), default: null, description: "The home directory; `null` means /home/<name> for normal users." }),
  shell: mkOption({ type: types.str, default: "/bin/bash", description: "The login shell.", example: "/usr/bin/zsh" }),
  hashedPassword: mkOption({
    type: types.nullOr(types.str),
    default: null,
    description: "A crypt(3) hash of the password (e.g. from `mkpasswd -m yescrypt`). `null` locks password login.",
  }),
  openssh: {
    authorizedKeys: {
      keys: mkOption({
        type: types.listOf(types.str),
        default: [],
        description: "SSH public keys allowed to log in as this user.",
        example: ["ssh-ed25519 AAAAC3Nza… brendan@laptop"],
      }),
    },
  },
});

export const options = {
  users: {
    users: mkOption({
      type: types.attrsOf(user),
      default: {},
      description: "User accounts, by name.",
      example: { brendan: { isNormalUser: true, extraGroups: ["sudo"] } },
    }),
    groups: mkOption({
      type: types.attrsOf(types.submodule({
        gid: mkOption({ type: types.nullOr(types.ints.unsigned), default: null, description: "The group's id; `null` picks a free one." }),
      })),
      default: {},
      description: "Groups, by name.",
    }),
  },
};

/** What useradd accepts as a name (Debian's default NAME_REGEX, with capitals). */
const userName = /^[a-z_][a-zA-Z0-9_-]*\$?$/;

export default defineModule({
  options,
  config: ({ config }) => ({
    assertions: [...Object.keys(config.users.users), ...Object.keys(config.users.groups)].map((name) => ({
      assertion: userName.test(name) && name.length <= 32,
      message: `users: "${name}" is not a valid user or group name. Use lower-case letters, digits, _ and -, starting with a letter or _.`,
    })),
  }),
});
