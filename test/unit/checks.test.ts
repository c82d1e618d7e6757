// Values that would fail later (useradd, hostname, a kernel build, apt, QEMU,
// sshd) are refused when the system is evaluated, each with a message naming
// the option, the file that defined the value and the fix. Modules written
// here are named by this file (`<here>'); those that must come from two files
// are fixtures in test/fixtures/checks.
import assert from "node:assert/strict";
import path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import type { ModuleInput } from "../../src/config/module.ts";
import { evaluateSystem, type EvaluatedSystem } from "../../src/config/project.ts";
import { ConfigError } from "../../src/errors.ts";
import { defineModule, mkForce } from "../../src/index.ts";
import aliceUid1000 from "../fixtures/checks/uid-alice-1000.ts";
import bobUid1000 from "../fixtures/checks/uid-bob-1000.ts";
import bobUid1001 from "../fixtures/checks/uid-bob-1001.ts";
import forwardSsh2222 from "../fixtures/checks/forward-ssh-2222.ts";
import forwardWeb2222 from "../fixtures/checks/forward-web-2222.ts";

const here = fileURLToPath(import.meta.url);
const fixtures = path.resolve(path.dirname(here), "../fixtures/checks");

const rootFileSystem: ModuleInput = { config: { fileSystems: { "/": { device: "/dev/vda", fsType: "ext4" } } } };

/** A system of a fake project (keel.config.ts among the fixtures, one kernel source input): the built-in modules, a root file system and `modules`. */
function evaluate(modules: readonly ModuleInput[], name = "test"): EvaluatedSystem {
  const project = {
    file: path.join(fixtures, "keel.config.ts"),
    inputs: { linux: { type: "debian-source", package: "linux-source-6.1" } as const },
    systems: new Map([[name, [rootFileSystem, ...modules]]]),
  };
  return evaluateSystem(project, name);
}

/** Evaluating `modules` fails with exactly this ConfigError, with this file as `<here>' and the fixtures directory as `<fixtures>'. */
function refused(expected: string, modules: readonly ModuleInput[], name?: string): void {
  let result: EvaluatedSystem;
  try {
    result = evaluate(modules, name);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    assert.equal(error.message.replaceAll(here, "<here>").replaceAll(fixtures, "<fixtures>"), expected);
    return;
  }
  assert.fail(`expected a ConfigError, got a system with ${JSON.stringify(result.config.networking)}`);
}

const msg = (...lines: string[]): string => lines.join("\n");

describe("users: unique uids and gids, as NixOS asserts", () => {
  it("two users with one uid, from two files", () =>
    refused(
      msg(
        "The users `alice' and `bob' have the same uid, 1000:",
        "- `users.users.alice.uid' in `<fixtures>/uid-alice-1000.ts': 1000",
        "- `users.users.bob.uid' in `<fixtures>/uid-bob-1000.ts': 1000",
        "Fix: give each user its own uid, or set `uid: null' on all but one to let keel pick a free one.",
      ),
      [aliceUid1000, bobUid1000],
    ));
  it("a uid set in two files names both", () =>
    refused(
      msg(
        "The users `alice' and `bob' have the same uid, 1000:",
        "- `users.users.alice.uid' in `<fixtures>/uid-alice-1000.ts' and `<here>': 1000",
        "- `users.users.bob.uid' in `<fixtures>/uid-bob-1000.ts': 1000",
        "Fix: give each user its own uid, or set `uid: null' on all but one to let keel pick a free one.",
      ),
      [aliceUid1000, bobUid1000, defineModule({ users: { users: { alice: { uid: 1000 } } } })],
    ));
  it("the uid that takes effect is the one checked", () =>
    assert.equal(evaluate([aliceUid1000, bobUid1000, defineModule({ users: { users: { bob: { uid: mkForce(1001) } } } })]).config.users.users.bob?.uid, 1001));
  it("different uids, and users without one", () =>
    assert.deepEqual(
      Object.entries(evaluate([aliceUid1000, bobUid1001, defineModule({ users: { users: { carol: {}, dave: {} } } })]).config.users.users).map(([n, u]) => [n, u.uid]),
      [["alice", 1000], ["bob", 1001], ["carol", null], ["dave", null]],
    ));
  it("three groups with one gid", () =>
    refused(
      msg(
        "The groups `wheel', `staff' and `audio' have the same gid, 10:",
        "- `users.groups.wheel.gid' in `<here>': 10",
        "- `users.groups.staff.gid' in `<here>': 10",
        "- `users.groups.audio.gid' in `<here>': 10",
        "Fix: give each group its own gid, or set `gid: null' on all but one to let keel pick a free one.",
      ),
      [defineModule({ users: { groups: { wheel: { gid: 10 }, staff: { gid: 10 }, audio: { gid: 10 } } } })],
    ));
  it("different gids", () =>
    assert.deepEqual(evaluate([defineModule({ users: { groups: { wheel: { gid: 10 }, staff: { gid: 50 }, audio: {} } } })]).config.users.groups, {
      wheel: { gid: 10 },
      staff: { gid: 50 },
      audio: { gid: null },
    }));
});

const hostNameRule = "A host name is 1 to 63 letters, digits and hyphens, and does not start or end with a hyphen (RFC 1123).";
const hostName = (name: string) => defineModule({ networking: { hostName: name } });

describe("networking.hostName: one DNS label, as NixOS requires", () => {
  it("a space", () =>
    refused(
      msg(
        `A definition for option \`networking.hostName' is not a host name: it has a space. ${hostNameRule}`,
        "- In `<here>': \"office pc\"",
        'Fix: set `networking.hostName\' to such a name, e.g. "office-pc".',
      ),
      [hostName("office pc")],
    ));
  it("a domain", () =>
    refused(
      msg(
        `A definition for option \`networking.hostName' is not a host name: it has a dot (a host name has no domain part). ${hostNameRule}`,
        "- In `<here>': \"web.example.com\"",
        'Fix: set `networking.hostName\' to such a name, e.g. "web".',
      ),
      [hostName("web.example.com")],
    ));
  it("64 characters", () =>
    refused(
      msg(
        `A definition for option \`networking.hostName' is not a host name: it is 64 characters long. ${hostNameRule}`,
        `- In \`<here>': "${"a".repeat(64)}"`,
        `Fix: set \`networking.hostName' to such a name, e.g. "${"a".repeat(63)}".`,
      ),
      [hostName("a".repeat(64))],
    ));
  it("a leading hyphen", () =>
    refused(
      msg(
        `A definition for option \`networking.hostName' is not a host name: it starts with a hyphen. ${hostNameRule}`,
        "- In `<here>': \"-web\"",
        'Fix: set `networking.hostName\' to such a name, e.g. "web".',
      ),
      [hostName("-web")],
    ));
  it("a system's name that is no host name, when nothing sets one", () =>
    refused(
      msg(
        `A definition for option \`networking.hostName' is not a host name: it has "_". ${hostNameRule}`,
        "- In `<fixtures>/keel.config.ts (the system's name)': \"web_1\"",
        'Fix: set `networking.hostName\' to such a name, e.g. "web-1".',
      ),
      [],
      "web_1",
    ));
  it("letters, digits and hyphens, 63 of them at most", () => {
    assert.equal(evaluate([hostName("office-pc")]).config.networking.hostName, "office-pc");
    assert.equal(evaluate([hostName(`A${"b".repeat(61)}9`)]).config.networking.hostName, `A${"b".repeat(61)}9`);
  });
  it("a host name set beside such a system's name", () => assert.equal(evaluate([hostName("web-1")], "web_1").config.networking.hostName, "web-1"));
});

const kernel = (settings: Record<string, string | number>) => defineModule({ boot: { kernel: { source: "linux", settings } } });

describe("boot.kernel.settings: Kconfig symbols without CONFIG_, values a .config line holds", () => {
  it("a CONFIG_ prefix", () =>
    refused(
      msg(
        "A definition for option `boot.kernel.settings' names the setting `CONFIG_VIRTIO_BLK' with the `CONFIG_' prefix, which keel adds itself.",
        "- In `<here>': { CONFIG_VIRTIO_BLK: \"y\" }",
        "Fix: write `VIRTIO_BLK' instead of `CONFIG_VIRTIO_BLK'.",
      ),
      [kernel({ CONFIG_VIRTIO_BLK: "y" })],
    ));
  it("lower case", () =>
    refused(
      msg(
        "A definition for option `boot.kernel.settings' names the setting `virtio_blk', which is not a Kconfig symbol: those are capital letters, digits and _.",
        "- In `<here>': { VIRTIO_PCI: \"y\", virtio_blk: \"m\" }",
        "Fix: write `VIRTIO_BLK' instead of `virtio_blk'.",
      ),
      [kernel({ VIRTIO_PCI: "y", virtio_blk: "m" })],
    ));
  it("a lower-case prefix", () =>
    refused(
      msg(
        "A definition for option `boot.kernel.settings' names the setting `config_kvm' with the `CONFIG_' prefix, which keel adds itself.",
        "- In `<here>': { config_kvm: \"m\" }",
        "Fix: write `KVM' instead of `config_kvm'.",
      ),
      [kernel({ config_kvm: "m" })],
    ));
  it("a line break in a string value", () =>
    refused(
      msg(
        "A definition for option `boot.kernel.settings.CMDLINE' is a string with a line break, which a .config line cannot hold.",
        "- In `<here>': \"console=ttyS0\\nquiet\"",
        "Fix: give the setting a one-line value of printable characters.",
      ),
      [kernel({ CMDLINE: "console=ttyS0\nquiet" })],
    ));
  it("tristates, numbers, hex and strings", () =>
    assert.deepEqual(evaluate([kernel({ VIRTIO_BLK: "y", KVM: "m", DEBUG_INFO: "n", HZ: 100, PHYSICAL_START: "0x1000000", LOCALVERSION: '-keel "x"', "64BIT": "y" })]).config.boot.kernel.settings, {
      VIRTIO_BLK: "y",
      KVM: "m",
      DEBUG_INFO: "n",
      HZ: 100,
      PHYSICAL_START: "0x1000000",
      LOCALVERSION: '-keel "x"',
      "64BIT": "y",
      // keel's layout module: stage 1 needs overlayfs in every kernel it builds.
      OVERLAY_FS: "y",
    }));
});

const packageRule = 'A package name is at least two characters, lower-case letters, digits, "+", "-" and ".", starting with a letter or digit (Debian Policy 5.6.1).';
const packages = (...names: string[]) => defineModule({ packages: names });

describe("Debian package names (Debian Policy 5.6.1)", () => {
  it("a space", () =>
    refused(
      msg(
        `A definition for option \`packages[definition 1, entry 1]' is not a Debian package name: it has a space. ${packageRule}`,
        "- In `<here>': \"Foo Bar\"",
        "Fix: write each name without spaces; two packages are two entries of `packages', e.g. [\"foo\", \"bar\"].",
      ),
      [packages("Foo Bar")],
    ));
  it("a path", () =>
    refused(
      msg(
        `A definition for option \`packages[definition 1, entry 2]' is not a Debian package name: it has "/". ${packageRule}`,
        "- In `<here>': \"../x\"",
        'Fix: name a package as `apt-cache search <word>` lists it, e.g. "vim-tiny".',
      ),
      [packages("htop", "../x")],
    ));
  it("a capital letter", () =>
    refused(
      msg(
        `A definition for option \`packages[definition 1, entry 1]' is not a Debian package name: it has a capital letter. ${packageRule}`,
        "- In `<here>': \"Htop\"",
        'Fix: write "htop".',
      ),
      [packages("Htop")],
    ));
  it("apt's version", () =>
    refused(
      msg(
        `A definition for option \`packages[definition 1, entry 1]' is not a Debian package name: it has "=". ${packageRule}`,
        "- In `<here>': \"htop=3.2.2-2\"",
        'Fix: name the package alone, "htop": keel.lock pins its version.',
      ),
      [packages("htop=3.2.2-2")],
    ));
  it("one character", () =>
    refused(
      msg(
        `A definition for option \`packages[definition 1, entry 1]' is not a Debian package name: it is shorter than two characters. ${packageRule}`,
        "- In `<here>': \"x\"",
        'Fix: name a package as `apt-cache search <word>` lists it, e.g. "vim-tiny".',
      ),
      [packages("x")],
    ));
  it("boot.kernel.debianPackage too", () =>
    refused(
      msg(
        `A definition for option \`boot.kernel.debianPackage' is not a Debian package name: it starts with "-". ${packageRule}`,
        "- In `<here>': \"-linux-image-amd64\"",
        'Fix: name a package as `apt-cache search <word>` lists it, e.g. "vim-tiny".',
      ),
      [defineModule({ boot: { kernel: { debianPackage: "-linux-image-amd64" } } })],
    ));
  it("names Debian has", () => {
    assert.deepEqual(evaluate([packages("g++", "libstdc++6", "vim-tiny", "0ad")]).config.packages, ["g++", "libstdc++6", "vim-tiny", "0ad"]);
    assert.equal(evaluate([defineModule({ boot: { kernel: { debianPackage: "linux-image-6.1.0-28-amd64" } } })]).config.boot.kernel.debianPackage, "linux-image-6.1.0-28-amd64");
  });
});

describe("virtualisation.forwardPorts: one listener per address and port", () => {
  it("two forwards of one host port, from two files", () =>
    refused(
      msg(
        "Two forwards of `virtualisation.forwardPorts' listen on host port 2222 (tcp, 127.0.0.1), which QEMU cannot open twice:",
        '- In `<fixtures>/forward-ssh-2222.ts\': { from: "host", proto: "tcp", host: { address: "127.0.0.1", port: 2222 }, guest: { address: "", port: 22 } }',
        '- In `<fixtures>/forward-web-2222.ts\': { from: "host", proto: "tcp", host: { address: "127.0.0.1", port: 2222 }, guest: { address: "", port: 80 } }',
        "Fix: give one of them another host port.",
      ),
      [forwardSsh2222, forwardWeb2222],
    ));
  it("every address meets 127.0.0.1", () =>
    refused(
      msg(
        "Two forwards of `virtualisation.forwardPorts' listen on host port 2222 (tcp, 127.0.0.1 and 0.0.0.0), which QEMU cannot open twice:",
        '- In `<fixtures>/forward-ssh-2222.ts\': { from: "host", proto: "tcp", host: { address: "127.0.0.1", port: 2222 }, guest: { address: "", port: 22 } }',
        '- In `<here>\': { from: "host", proto: "tcp", host: { address: "0.0.0.0", port: 2222 }, guest: { address: "", port: 8080 } }',
        "Fix: give one of them another host port.",
      ),
      [forwardSsh2222, defineModule({ virtualisation: { forwardPorts: [{ host: { address: "0.0.0.0", port: 2222 }, guest: { port: 8080 } }] } })],
    ));
  it("two guest forwards of one guest address and port", () =>
    refused(
      msg(
        "Two forwards of `virtualisation.forwardPorts' listen on guest port 3000 (tcp, 10.0.2.100), which QEMU cannot open twice:",
        '- In `<here>\': { from: "guest", proto: "tcp", host: { address: "127.0.0.1", port: 3000 }, guest: { address: "10.0.2.100", port: 3000 }…',
        '- In `<here>\': { from: "guest", proto: "tcp", host: { address: "127.0.0.1", port: 3001 }, guest: { address: "10.0.2.100", port: 3000 }…',
        "Fix: give one of them another guest port.",
      ),
      [
        defineModule({
          virtualisation: {
            forwardPorts: [
              { from: "guest", host: { port: 3000 }, guest: { address: "10.0.2.100", port: 3000 } },
              { from: "guest", host: { port: 3001 }, guest: { address: "10.0.2.100", port: 3000 } },
            ],
          },
        }),
      ],
    ));
  it("another protocol, another address, or the other side", () =>
    assert.equal(
      evaluate([
        forwardSsh2222,
        defineModule({
          virtualisation: {
            forwardPorts: [
              { proto: "udp", host: { port: 2222 }, guest: { port: 22 } },
              { host: { address: "127.0.0.2", port: 2222 }, guest: { port: 80 } },
              { from: "guest", host: { port: 2222 }, guest: { address: "10.0.2.100", port: 2222 } },
            ],
          },
        }),
      ]).config.virtualisation.forwardPorts.length,
      4,
    ));
});

const paramRule = 'A parameter is printable characters, like "console=ttyS0" or "quiet"; a value with spaces is quoted (foo="a b").';
const kernelParams = (...params: string[]) => defineModule({ boot: { kernelParams: params } });

describe("boot.kernelParams: one line of the kernel command line", () => {
  it("a line break", () =>
    refused(
      msg(
        `A definition for option \`boot.kernelParams[definition 1, entry 1]' is not a kernel parameter: it has a line break. ${paramRule}`,
        "- In `<here>': \"console=ttyS0,115200\\nquiet\"",
        'Fix: give each parameter its own entry, e.g. ["console=ttyS0,115200", "quiet"].',
      ),
      [kernelParams("console=ttyS0,115200\nquiet")],
    ));
  it("an empty parameter", () =>
    refused(
      msg(
        `A definition for option \`boot.kernelParams[definition 1, entry 2]' is not a kernel parameter: it is empty. ${paramRule}`,
        "- In `<here>': \"\"",
        "Fix: remove the empty entry.",
      ),
      [kernelParams("quiet", "")],
    ));
  it("a quote left open", () =>
    refused(
      msg(
        `A definition for option \`boot.kernelParams[definition 1, entry 1]' is not a kernel parameter: its double quote is not closed, so the kernel would take every parameter after it as part of this one. ${paramRule}`,
        "- In `<here>': \"dyndbg=\\\"file foo.c +p\"",
        'Fix: close the quote, e.g. `foo="a b"`.',
      ),
      [kernelParams('dyndbg="file foo.c +p')],
    ));
  it("words, quoted values and commas", () =>
    assert.deepEqual(evaluate([kernelParams("console=ttyS0,115200n8", 'dyndbg="file foo.c +p"', "quiet")]).config.boot.kernelParams, [
      "console=ttyS0,115200n8",
      'dyndbg="file foo.c +p"',
      "quiet",
    ]));
});

const ed25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGUrsd0as9j3gZ3BAKSC/JHSu868kaeieGg5nlhonf+I alice@laptop";
const ecdsa = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBOn/tfwuBpPaqM3thf/kD5UO8XfdOu4XrNkkvVerh8Lmi/aM0i5Wbz2ehzQi+ITSc7GTHwENuwdJoh273Ls+/Is= ecdsa@host";
const keyRule = 'A key is one line of a .pub file: its type, its base64 and a comment ("ssh-ed25519 AAAAC3Nza… you@host"), after sshd\'s options if any.';
const pasteFix = "Fix: paste the whole line of the public key file (`ssh-keygen -y -f <private key>` prints it), one key per entry.";
const keyOption = "users.users.root.openssh.authorizedKeys.keys[definition 1, entry 1]";
const rootKeys = (...keys: string[]) => defineModule({ users: { users: { root: { openssh: { authorizedKeys: { keys } } } } } });

describe("authorized keys: OpenSSH public keys, not files", () => {
  it("a path in the home directory", () =>
    refused(
      msg(
        `A definition for option \`${keyOption}' is a file path, not an SSH public key.`,
        "- In `<here>': \"~/.ssh/id_ed25519.pub\"",
        'Fix: put the key itself here ("ssh-ed25519 AAAA… you@host"), or read the file: readFileSync(`${homedir()}/.ssh/id_ed25519.pub`, "utf8").trim(), ' +
          "with `import { readFileSync } from \"node:fs\"' and `import { homedir } from \"node:os\"'.",
      ),
      [rootKeys("~/.ssh/id_ed25519.pub")],
    ));
  it("an absolute path", () =>
    refused(
      msg(
        `A definition for option \`${keyOption}' is a file path, not an SSH public key.`,
        "- In `<here>': \"/root/.ssh/id.pub\"",
        'Fix: put the key itself here ("ssh-ed25519 AAAA… you@host"), or read the file: readFileSync("/root/.ssh/id.pub", "utf8").trim(), with `import { readFileSync } from "node:fs"\'.',
      ),
      [rootKeys("/root/.ssh/id.pub")],
    ));
  it("a relative path", () =>
    refused(
      msg(
        `A definition for option \`${keyOption}' is a file path, not an SSH public key.`,
        "- In `<here>': \"keys/alice.pub\"",
        'Fix: put the key itself here ("ssh-ed25519 AAAA… you@host"), or read the file: readFileSync(new URL("./keys/alice.pub", import.meta.url), "utf8").trim() (the path taken from the module\'s own file), ' +
          "with `import { readFileSync } from \"node:fs\"'.",
      ),
      [rootKeys("keys/alice.pub")],
    ));
  it("a misspelled key type", () =>
    refused(
      msg(
        `A definition for option \`${keyOption}' is not an SSH public key: \`ssh-ed2519' is not a key type (ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256, …). ${keyRule}`,
        `- In \`<here>': "${ed25519.replace("ssh-ed25519", "ssh-ed2519")}"`,
        pasteFix,
      ),
      [rootKeys(ed25519.replace("ssh-ed25519", "ssh-ed2519"))],
    ));
  it("a type its base64 does not hold", () =>
    refused(
      msg(
        `A definition for option \`${keyOption}' is not an SSH public key: its base64 holds a key of type \`ssh-ed25519', not \`ssh-rsa'. ${keyRule}`,
        `- In \`<here>': "${ed25519.replace("ssh-ed25519", "ssh-rsa")}"`,
        pasteFix,
      ),
      [rootKeys(ed25519.replace("ssh-ed25519", "ssh-rsa"))],
    ));
  it("a key cut short", () =>
    refused(
      msg(
        `A definition for option \`${keyOption}' is not an SSH public key: its base64 is not a key of type \`ssh-ed25519': it is cut short or garbled. ${keyRule}`,
        "- In `<here>': \"ssh-ed25519 AAAAC3NzaC1lZDI1 alice@laptop\"",
        pasteFix,
      ),
      [rootKeys("ssh-ed25519 AAAAC3NzaC1lZDI1 alice@laptop")],
    ));
  it("no base64", () =>
    refused(
      msg(`A definition for option \`${keyOption}' is not an SSH public key: its key, after \`ssh-ed25519', is not base64. ${keyRule}`, "- In `<here>': \"ssh-ed25519 <key> alice@laptop\"", pasteFix),
      [rootKeys("ssh-ed25519 <key> alice@laptop")],
    ));
  it("two keys in one entry", () =>
    refused(
      msg(
        `A definition for option \`${keyOption}' is not an SSH public key: it has a line break. ${keyRule}`,
        `- In \`<here>': ${JSON.stringify(`${ed25519}\n${ecdsa}`).slice(0, 119)}…`,
        pasteFix,
      ),
      [rootKeys(`${ed25519}\n${ecdsa}`)],
    ));
  it("options whose quote is not closed", () =>
    refused(
      msg(`A definition for option \`${keyOption}' is not an SSH public key: a double quote in its options is not closed. ${keyRule}`, `- In \`<here>': ${JSON.stringify(`command="uptime ${ed25519}`)}`, pasteFix),
      [rootKeys(`command="uptime ${ed25519}`)],
    ));
  it("keys of each kind, with and without sshd's options", () => {
    const keys = [ed25519, ecdsa, ed25519.split(" ").slice(0, 2).join(" "), `restrict ${ed25519}`, `from="10.0.0.0/8",command="echo a b" ${ecdsa}`];
    assert.deepEqual(evaluate([rootKeys(...keys)]).config.users.users.root?.openssh.authorizedKeys.keys, keys);
  });
});
