import { Buffer } from "node:buffer";
import { defineModule } from "../config/module.js";
import { mkOption, type OptionType } from "../config/option.js";
import { showPath } from "../config/show.js";
import { describeCharacter, types, type Refusal } from "../config/types.js";
import { ConfigError } from "../errors.js";

/** The key types sshd accepts in authorized_keys (`ssh -Q key-plain`). */
const keyTypes = [
  "ssh-ed25519",
  "ssh-rsa",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "sk-ssh-ed25519@openssh.com",
  "sk-ecdsa-sha2-nistp256@openssh.com",
  "ssh-dss",
];

/** The length of an authorized_keys line's options (`no-pty,command="a b" `), quotes included; undefined when a quote is not closed. */
function optionsLength(line: string): number | undefined {
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === "\\" && quoted) i++;
    else if (c === '"') quoted = !quoted;
    else if (!quoted && /\s/.test(c as string)) return i;
  }
  return quoted ? undefined : line.length;
}

/** What is wrong with an authorized_keys line, as sshd reads it: `[options] type base64 [comment]`, the type repeated inside the base64. */
function keyProblem(line: string): string | undefined {
  const bad = /\p{Cc}/u.exec(line)?.[0];
  if (bad !== undefined) return `it has ${describeCharacter(bad)}`;
  const trimmed = line.trim();
  if (trimmed === "") return "it is empty";
  const first = trimmed.split(/\s+/)[0] as string;
  const skip = keyTypes.includes(first) ? 0 : optionsLength(trimmed);
  if (skip === undefined) return "a double quote in its options is not closed";
  const [type, data] = trimmed.slice(skip).trim().split(/\s+/);
  if (type === undefined || !keyTypes.includes(type)) {
    const named = [first, type].find((w) => w !== undefined && /^(ssh|ecdsa|sk)-/.test(w)) ?? first;
    return `\`${named}' is not a key type (${keyTypes.slice(0, 3).join(", ")}, …)`;
  }
  if (data === undefined) return `it has no key after \`${type}'`;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(data) || data.length % 4 !== 0) return `its key, after \`${type}', is not base64`;
  const blob = Buffer.from(data, "base64");
  const length = blob.length >= 4 ? blob.readUInt32BE(0) : 0;
  const inner = blob.subarray(4, 4 + length).toString("latin1");
  if (blob.length >= 4 + length && inner === type) return undefined;
  return keyTypes.includes(inner) ? `its base64 holds a key of type \`${inner}', not \`${type}'` : `its base64 is not a key of type \`${type}': it is cut short or garbled`;
}

/** A file's contents as a config reads them with node:fs: what to write instead of the path. */
function readingFix(file: string): string {
  const put = 'put the key itself here ("ssh-ed25519 AAAA… you@host"), or read the file: ';
  if (file.startsWith("~/")) {
    return `${put}readFileSync(\`\${homedir()}${file.slice(1)}\`, "utf8").trim(), with \`import { readFileSync } from "node:fs"' and \`import { homedir } from "node:os"'.`;
  }
  if (file.startsWith("/")) return `${put}readFileSync(${JSON.stringify(file)}, "utf8").trim(), with \`import { readFileSync } from "node:fs"'.`;
  const relative = file.startsWith(".") ? file : `./${file}`;
  return `${put}readFileSync(new URL(${JSON.stringify(relative)}, import.meta.url), "utf8").trim() (the path taken from the module's own file), with \`import { readFileSync } from "node:fs"'.`;
}

function authorizedKeyRefusal(key: string): Refusal | undefined {
  if (/^(~\/|\/|\.{1,2}\/)\S*$|^\S+\.pub$/.test(key)) return { problem: "is a file path, not an SSH public key.", fix: readingFix(key) };
  const problem = keyProblem(key);
  if (problem === undefined) return undefined;
  return {
    problem: `is not an SSH public key: ${problem}. A key is one line of a .pub file: its type, its base64 and a comment ("ssh-ed25519 AAAAC3Nza… you@host"), after sshd's options if any.`,
    fix: "paste the whole line of the public key file (`ssh-keygen -y -f <private key>` prints it), one key per entry.",
  };
}

/**
 * Accounts whose ids must differ, as NixOS asserts (useradd and groupadd refuse
 * a taken id): two with one id are an error naming both and the files that gave it.
 */
function uniqueIds<K extends string, R extends Readonly<Record<K, number | null>>, I>(
  type: OptionType<Readonly<Record<string, R>>, I>,
  kind: string,
  id: K,
): OptionType<Readonly<Record<string, R>>, I> {
  return {
    ...type,
    merge: (p, defs) => {
      const merged = type.merge(p, defs);
      const byId = new Map<number, string[]>();
      for (const [name, account] of Object.entries(merged)) {
        const value = account[id];
        if (value !== null) byId.set(value, [...(byId.get(value) ?? []), name]);
      }
      const shared = [...byId].find(([, names]) => names.length > 1);
      if (shared === undefined) return merged;
      const [value, names] = shared;
      // Each definition alone: the files whose own definitions give the account this id.
      const alone = defs.map((def) => ({ file: def.file, accounts: type.merge(p, [def]) }));
      const lines = names.map((name) => {
        const files = alone.filter((a) => a.accounts[name]?.[id] === value).map((a) => `\`${a.file}'`);
        return `- \`${showPath([...p, name, id])}' in ${files.join(" and ")}: ${value}`;
      });
      throw new ConfigError(
        `The ${kind}s ${names.map((n) => `\`${n}'`).join(", ").replace(/, (?=[^,]*$)/, " and ")} have the same ${id}, ${value}:\n${lines.join("\n")}\n` +
          `Fix: give each ${kind} its own ${id}, or set \`${id}: null' on all but one to let keel pick a free one.`,
      );
    },
  };
}

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
        type: types.listOf(types.checked(types.str, authorizedKeyRefusal, "SSH public key")),
        default: [],
        description: "SSH public keys allowed to log in as this user, each a line of a .pub file.",
        example: ["ssh-ed25519 AAAAC3Nza… brendan@laptop"],
      }),
    },
  },
});

export const options = {
  users: {
    users: mkOption({
      type: uniqueIds(types.attrsOf(user), "user", "uid"),
      default: {},
      description: "User accounts, by name.",
      example: { brendan: { isNormalUser: true, extraGroups: ["sudo"] } },
    }),
    groups: mkOption({
      type: uniqueIds(
        types.attrsOf(types.submodule({
          gid: mkOption({ type: types.nullOr(types.ints.unsigned), default: null, description: "The group's id; `null` picks a free one." }),
        })),
        "group",
        "gid",
      ),
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
    assertions: (["users", "groups"] as const).flatMap((kind) =>
      Object.keys(config.users[kind]).map((name) => ({
        assertion: userName.test(name) && name.length <= 32,
        message: `users: "${name}" is not a valid user or group name. Use lower-case letters, digits, _ and -, starting with a letter or _.`,
        option: `users.${kind}.${JSON.stringify(name)}`,
      })),
    ),
  }),
});
