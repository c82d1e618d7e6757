// Values that would fail minutes later (useradd, a kernel build, apt) as the
// user sees them from `keel eval`: the same ConfigError whether the config is
// type-checked first (the default) or not, since each value is well typed.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../", import.meta.url));
const keel = path.join(root, "bin/keel.js");
const scratch = mkdtempSync(path.join(os.tmpdir(), "keel-checks-"));
const env = { ...process.env, XDG_CACHE_HOME: path.join(scratch, "cache") };

after(() => rmSync(scratch, { recursive: true, force: true }));

let projects = 0;

/** A project whose system `box' imports `mod.ts` (and `other.ts` when given), with `keel` resolvable as after `npm install keel`. */
function makeProject(mod: string, other?: string): string {
  const dir = path.join(scratch, `project-${++projects}`);
  mkdirSync(path.join(dir, "node_modules"), { recursive: true });
  symlinkSync(root, path.join(dir, "node_modules/keel"));
  const imports = other === undefined ? "[mod]" : "[mod, other]";
  writeFileSync(
    path.join(dir, "keel.config.ts"),
    `import { defineModule, defineProject } from "keel";\nimport mod from "./mod";\n${other === undefined ? "" : 'import other from "./other";\n'}` +
      `const box = defineModule({ imports: ${imports}, fileSystems: { "/": { device: "/dev/vda", fsType: "ext4" } } });\n` +
      `export default defineProject({ inputs: { linux: { type: "debian-source", package: "linux-source-6.1" } }, systems: { box } });\n`,
  );
  writeFileSync(path.join(dir, "mod.ts"), `import { defineModule } from "keel";\nexport default defineModule(${mod});\n`);
  if (other !== undefined) writeFileSync(path.join(dir, "other.ts"), `import { defineModule } from "keel";\nexport default defineModule(${other});\n`);
  return dir;
}

/** `keel eval box`'s standard error, with and without the type-check, which must agree; the directory is written <dir>. */
async function evalError(dir: string): Promise<string> {
  const messages = await Promise.all(
    [["eval", "box"], ["eval", "box", "--no-typecheck"]].map(
      (args) =>
        new Promise<string>((resolve) => {
          execFile(process.execPath, [keel, ...args], { cwd: dir, env }, (error, stdout, stderr) => {
            assert.equal(error?.code, 1, `exit code of keel ${args.join(" ")}; stderr:\n${stderr}`);
            assert.equal(stdout, "");
            resolve(stderr.replaceAll(dir, "<dir>"));
          });
        }),
    ),
  );
  assert.equal(messages[0], messages[1], "the same message with and without the type-check");
  return messages[0] as string;
}

describe("evaluation-time checks, from the command line", () => {
  test("two users with one uid", async () =>
    assert.equal(
      await evalError(makeProject("{ users: { users: { alice: { uid: 1000 } } } }", "{ users: { users: { bob: { uid: 1000 } } } }")),
      "error: The users `alice' and `bob' have the same uid, 1000:\n" +
        "- `users.users.alice.uid' in `<dir>/mod.ts': 1000\n" +
        "- `users.users.bob.uid' in `<dir>/other.ts': 1000\n" +
        "Fix: give each user its own uid, or set `uid: null' on all but one to let keel pick a free one.\n",
    ));

  test("a host name with a space", async () =>
    assert.equal(
      await evalError(makeProject('{ networking: { hostName: "office pc" } }')),
      "error: A definition for option `networking.hostName' is not a host name: it has a space. " +
        "A host name is 1 to 63 letters, digits and hyphens, and does not start or end with a hyphen (RFC 1123).\n" +
        "- In `<dir>/mod.ts': \"office pc\"\n" +
        'Fix: set `networking.hostName\' to such a name, e.g. "office-pc".\n',
    ));

  test("a kernel setting with its CONFIG_ prefix", async () =>
    assert.equal(
      await evalError(makeProject('{ boot: { kernel: { source: "linux", settings: { CONFIG_VIRTIO_BLK: "y" } } } }')),
      "error: A definition for option `boot.kernel.settings' names the setting `CONFIG_VIRTIO_BLK' with the `CONFIG_' prefix, which keel adds itself.\n" +
        "- In `<dir>/mod.ts': { CONFIG_VIRTIO_BLK: \"y\" }\n" +
        "Fix: write `VIRTIO_BLK' instead of `CONFIG_VIRTIO_BLK'.\n",
    ));

  test("a package name that cannot exist", async () =>
    assert.equal(
      await evalError(makeProject('{ packages: ["Foo Bar"] }')),
      "error: A definition for option `packages[definition 1, entry 1]' is not a Debian package name: it has a space. " +
        'A package name is at least two characters, lower-case letters, digits, "+", "-" and ".", starting with a letter or digit (Debian Policy 5.6.1).\n' +
        "- In `<dir>/mod.ts': \"Foo Bar\"\n" +
        "Fix: write each name without spaces; two packages are two entries of `packages', e.g. [\"foo\", \"bar\"].\n",
    ));

  test("a unit description with a newline is refused, not written as a section of its own", async () =>
    assert.equal(
      await evalError(makeProject('{ systemd: { services: { hello: { description: "Says hello\\n[Service]\\nExecStartPre=/bin/rm -rf /", script: "echo hi" } } } }')),
      "error: A definition for option `systemd.services.hello.description' is not of type `single-line systemd value': it holds a line break.\n" +
        "- In `<dir>/mod.ts': \"Says hello\\n[Service]\\nExecStartPre=/bin/rm -rf /\"\n" +
        "Fix: give `systemd.services.hello.description' a value of type `single-line systemd value' in `<dir>/mod.ts'.\n",
    ));
});
