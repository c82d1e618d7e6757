// The keel binary end to end: the seed example, every command, and each kind
// of configuration error as the user sees it on the terminal.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { rmSync } from "node:fs";

const root = fileURLToPath(new URL("../../", import.meta.url));
const keel = path.join(root, "bin/keel.js");
const seed = path.join(root, "examples/seed");
const scratch = mkdtempSync(path.join(os.tmpdir(), "keel-cli-"));
const env = { ...process.env, XDG_CACHE_HOME: path.join(scratch, "cache") };
const version = (JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")) as { version: string }).version;

after(() => rmSync(scratch, { recursive: true, force: true }));

interface Result {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function runKeel(args: readonly string[], cwd = seed): Promise<Result> {
  return new Promise((resolve) => {
    execFile(process.execPath, [keel, ...args], { cwd, env }, (error, stdout, stderr) => {
      resolve({ code: error ? Number(error.code) : 0, stdout, stderr });
    });
  });
}

let projects = 0;

/** A project in a fresh directory, with `keel` resolvable as it is after `npm install keel`. */
function makeProject(files: Record<string, string>): string {
  const dir = path.join(scratch, `project-${++projects}`);
  mkdirSync(path.join(dir, "node_modules"), { recursive: true });
  symlinkSync(root, path.join(dir, "node_modules/keel"));
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
  return dir;
}

/** Runs keel in a project and returns its standard error with the directory written as <dir>. */
async function failure(dir: string, args: readonly string[], code = 1): Promise<string> {
  const result = await runKeel(args, dir);
  assert.equal(result.code, code, `exit code of keel ${args.join(" ")}; stderr:\n${result.stderr}`);
  assert.doesNotMatch(result.stderr, /^\s+at /m, "no stack trace without --debug");
  return result.stderr.replaceAll(dir, "<dir>");
}

const project = (systems: string, imports = "") =>
  `import { defineProject, defineModule, mkForce } from "keel";\n${imports}\n${systems}\n`;

describe("commands", () => {
  test("--version prints the package version", async () => {
    assert.deepEqual(await runKeel(["--version"]), { code: 0, stdout: `keel ${version}\n`, stderr: "" });
  });

  test("--help lists every command, and each command's help has usage and examples", async () => {
    const main = await runKeel(["--help"]);
    assert.equal(main.code, 0);
    for (const name of ["systems", "eval", "options"]) {
      assert.match(main.stdout, new RegExp(`^ {2}${name} `, "m"));
      const help = await runKeel([name, "--help"]);
      assert.equal(help.code, 0);
      assert.match(help.stdout, new RegExp(`^Usage: keel ${name}`, "m"));
      assert.match(help.stdout, /^Examples:\n {2}keel /m);
    }
  });

  test("no command prints the help and exits 2", async () => {
    const result = await runKeel([]);
    assert.equal(result.code, 2);
    assert.match(result.stdout, /^Usage: keel <command>/m);
  });

  test("an unknown command or flag is a usage error with a suggestion", async () => {
    assert.equal(
      await failure(seed, ["evl"], 2),
      "error: keel has no command `evl'. Did you mean `eval'?\nFix: run `keel --help` for the list of commands.\n",
    );
    assert.equal(
      await failure(seed, ["eval", "qemu", "--jsn"], 2),
      "error: keel eval: unknown option `--jsn'. Did you mean `--json'?\nFix: run `keel eval --help` for the options it takes.\n",
    );
    assert.equal(
      await failure(seed, ["eval"], 2),
      "error: keel eval: missing the argument <system> (A system of the project (see `keel systems`).).\nFix: run `keel eval --help` for its usage and examples.\n",
    );
  });
});

describe("the seed example", () => {
  test("keel systems lists qemu and aethelred", async () => {
    assert.deepEqual(await runKeel(["systems"]), { code: 0, stdout: "qemu\naethelred\n", stderr: "" });
  });

  test("keel eval qemu --json has the 2222 → 22 forward on loopback and sshd with keys only", async () => {
    const result = await runKeel(["eval", "qemu", "--json"]);
    assert.equal(result.code, 0, result.stderr);
    const config = JSON.parse(result.stdout);
    assert.deepEqual(config.virtualisation.forwardPorts, [
      { from: "host", proto: "tcp", host: { address: "127.0.0.1", port: 2222 }, guest: { address: "", port: 22 } },
    ]);
    assert.equal(config.networking.hostName, "qemu");
    assert.equal(config.services.openssh.enable, true);
    assert.equal(config.services.openssh.settings.PasswordAuthentication, false);
    assert.ok(config.packages.includes("openssh-server"), "openssh adds its package");
    assert.deepEqual(config.systemd.services.ssh.wantedBy, ["multi-user.target"]);
    assert.equal(config.time.timeZone, "Europe/London", "from common.ts");
    assert.equal("assertions" in config, false);
  });

  test("keel eval aethelred shows the custom kernel, the hardware module and the deploy target", async () => {
    const result = await runKeel(["eval", "aethelred", "--json"]);
    assert.equal(result.code, 0, result.stderr);
    const config = JSON.parse(result.stdout);
    assert.equal(config.boot.kernel.source, "linux");
    assert.equal(config.boot.kernel.baseConfig, "defconfig");
    assert.equal(config.boot.kernel.settings.BLK_DEV_NVME, "m", "the NVMe driver its hardware needs, which defconfig lacks");
    assert.ok(config.boot.initrd.availableKernelModules.includes("nvme"), "from aethelred-hardware.ts");
    assert.deepEqual(config.fileSystems["/boot"].options, ["fmask=0077", "dmask=0077"]);
    assert.equal(config.deploy.targetHost, "root@192.168.2.3");
    assert.equal(config.networking.hostName, "aethelred");
  });

  test("keel eval prints one option as lines, and takes quoted names", async () => {
    assert.deepEqual(await runKeel(["eval", "qemu", "virtualisation.forwardPorts"]), {
      code: 0,
      stdout: 'virtualisation.forwardPorts = [{"from":"host","proto":"tcp","host":{"address":"127.0.0.1","port":2222},"guest":{"address":"","port":22}}]\n',
      stderr: "",
    });
    const sshd = await runKeel(["eval", "qemu", 'environment.etc."ssh/sshd_config.d/keel.conf".text', "--json"]);
    assert.equal(
      JSON.parse(sshd.stdout),
      "Port 22\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n" +
        "HostKey /etc/ssh/ssh_host_ed25519_key\nPermitRootLogin prohibit-password\n" +
        "AuthorizedKeysFile .ssh/authorized_keys /etc/ssh/authorized_keys.d/%u\n",
    );
  });

  test("keel eval aethelred environment.etc lists every file keel writes under /etc; no VM unit ships to aethelred", async () => {
    const etc = await runKeel(["eval", "aethelred", "environment.etc", "--json"]);
    assert.equal(etc.code, 0, etc.stderr);
    const files = Object.keys(JSON.parse(etc.stdout) as object);
    for (const file of ["fstab", "hostname", "hosts", "ssh/sshd_config.d/keel.conf", "ssh/authorized_keys.d/brendan", "systemd/network/99-keel-dhcp.network", "systemd/system/ssh-keygen.service", "modules-load.d/keel.conf"]) {
      assert.ok(files.includes(file), file);
    }
    assert.deepEqual(files.filter((f) => f.includes("keel-vm")), []);
    const services = await runKeel(["eval", "aethelred", "systemd.services", "--json"]);
    // keel's own units, and Debian's resolved, sshd, e2scrub_reap and systemd-bless-boot as keel changes them (reordered, extended, off, held back on trial boots).
    assert.deepEqual(Object.keys(JSON.parse(services.stdout) as object), ["systemd-resolved", "ssh", "ssh-keygen", "e2scrub_reap", "keel-grow-root", "systemd-bless-boot", "keel-trial"]);
  });

  test("keel eval --vm shows the VM variant keel run boots: no unit of its own, stage 1's module for the VM's disk", async () => {
    const services = await runKeel(["eval", "qemu", "systemd.services", "--json", "--vm"]);
    assert.equal(services.code, 0, services.stderr);
    assert.deepEqual(Object.keys(JSON.parse(services.stdout) as object), ["systemd-resolved", "ssh", "ssh-keygen", "e2scrub_reap", "keel-grow-root", "systemd-bless-boot", "keel-trial"]);
    const modules = async (...vm: string[]) => JSON.parse((await runKeel(["eval", "aethelred", "boot.initrd.availableKernelModules", "--json", ...vm])).stdout) as string[];
    const [plain, variant] = [await modules(), await modules("--vm")];
    assert.deepEqual(variant.filter((m) => !plain.includes(m)), ["virtio_pci"], "the VM's PCI bus; its disk is NVMe, as aethelred's hardware module already loads");
  });

  test("keel eval names what exists when the path does not", async () => {
    assert.equal(
      await failure(seed, ["eval", "qemu", "networking.hostname"]),
      "error: The option `networking.hostname' does not exist. Did you mean `networking.hostName'?\n" +
        "Fix: check the spelling; `keel options networking` lists the options there.\n",
    );
    assert.equal(
      await failure(seed, ["eval", "qemu", "users.users.nobody"]),
      "error: The value of `users.users' has no `users.users.nobody'. It has: brendan, root.\n" +
        "Fix: check the name; `keel eval <system> users.users` shows the value.\n",
    );
    assert.deepEqual(await runKeel(["eval", "qemu", "users.users.root.shell"]), { code: 0, stdout: 'users.users.root.shell = "/bin/bash"\n', stderr: "" });
  });

  test("--project finds the project from another directory", async () => {
    const result = await runKeel(["systems", "--project", path.join(seed, "keel.config.ts")], scratch);
    assert.equal(result.stdout, "qemu\naethelred\n");
  });

  test("outside a project keel says how to name one", async () => {
    assert.equal(
      await failure(scratch, ["systems"], 2),
      "error: No keel.config.ts in `<dir>' or any directory above it.\nFix: run keel inside a project, or give one with --project path/to/keel.config.ts (examples/seed has one).\n",
    );
  });
});

describe("keel options", () => {
  test("documents services.openssh with type, default, example and the declaring file", async () => {
    const result = await runKeel(["options", "services.openssh"], scratch);
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stdout,
      /^services\.openssh\.enable\n {4}Whether to run the OpenSSH server\.\n {4}Type: boolean\n {4}Default: false\n {4}Declared in: keel\/src\/options\/services\/openssh\.ts\n/,
    );
    assert.match(result.stdout, /^services\.openssh\.settings\.PermitRootLogin\n.*\n {4}Type: one of "yes", "prohibit-password", "forced-commands-only", "no"\n {4}Default: "prohibit-password"\n/m);
    assert.match(result.stdout, /^services\.openssh\.ports\n.*\n {4}Type: list of \(port number\)\n {4}Default: \[22\]\n {4}Example: \[22,8022\]\n/m);
  });

  test("--json lists every option with a description, sub-options named through <name> and *", async () => {
    const result = await runKeel(["options", "--json"], scratch);
    const docs = JSON.parse(result.stdout) as { name: string; description: string; type: string }[];
    const names = docs.map((d) => d.name);
    for (const name of [
      "networking.hostName",
      "boot.kernel.source",
      "boot.kernelParams",
      "boot.initrd.availableKernelModules",
      "boot.loader.systemdBoot.enable",
      "fileSystems.<name>.device",
      "swapDevices.*.device",
      "users.users.<name>.openssh.authorizedKeys.keys",
      "users.users.<name>.hashedPassword",
      "services.openssh.settings.PasswordAuthentication",
      "networking.interfaces.<name>.ipv4.addresses.*.prefixLength",
      "packages",
      'environment.etc.<name>.text',
      "systemd.services.<name>.wantedBy",
      "time.timeZone",
      "distro.suite",
      "virtualisation.forwardPorts.*.host.port",
      "virtualisation.sharedDirectories.<name>.readOnly",
      "deploy.targetHost",
      "deploy.sshOptions",
    ]) {
      assert.ok(names.includes(name), `${name} is documented`);
    }
    for (const doc of docs) assert.ok(doc.description.length > 10 && doc.type.length > 0, `${doc.name} has a description and a type`);
  });

  test("an unknown prefix suggests the nearest option", async () => {
    assert.equal(
      await failure(scratch, ["options", "services.opensh"], 2),
      "error: No option is named `services.opensh' or starts with it. Did you mean `services.openssh'?\nFix: run `keel options` for the full list.\n",
    );
  });
});

describe("configuration errors, as the user sees them", () => {
  const other = `import { defineModule } from "keel";\nexport default defineModule({ networking: { hostName: "other" } });\n`;

  test("an unknown option: did you mean, with the defining file, whether or not the type check runs first", async () => {
    const dir = makeProject({
      "keel.config.ts": project(`const box = defineModule({ services: { opensh: { enable: true } } });\nexport default defineProject({ systems: { box } });`),
    });
    const expected =
      "error: The option `services.opensh' does not exist. Definition values:\n- In `<dir>/keel.config.ts': { enable: true }\n" +
      "Did you mean `services.openssh'?\nFix: rename it, or declare it under `options' in a module.\n";
    assert.equal(await failure(dir, ["eval", "box", "--no-typecheck"]), expected);
    assert.equal(await failure(dir, ["eval", "box"]), expected);
  });

  test("a wrong type: expected and given, with the defining file, whether or not the type check runs first", async () => {
    const dir = makeProject({
      "keel.config.ts": project(`export default defineProject({ systems: { box: mod } });`, 'import mod from "./mod";'),
      "mod.ts": `import { defineModule } from "keel";\nexport default defineModule({\n  networking: { hostName: 42 },\n});\n`,
    });
    const expected =
      "error: A definition for option `networking.hostName' is not of type `host name': it is the integer 42.\n" +
      "- In `<dir>/mod.ts': 42\nFix: give `networking.hostName' a value of type `host name' in `<dir>/mod.ts'.\n";
    assert.equal(await failure(dir, ["eval", "box", "--no-typecheck"]), expected);
    assert.equal(await failure(dir, ["eval", "box"]), expected);
  });

  test("conflicting definitions: each file and value, then the mkForce/mkDefault hint", async () => {
    const dir = makeProject({
      "keel.config.ts": project(
        `const box = defineModule({ imports: [other], networking: { hostName: "box" } });\nexport default defineProject({ systems: { box } });`,
        'import other from "./other";',
      ),
      "other.ts": other,
    });
    assert.equal(
      await failure(dir, ["eval", "box"]),
      "error: The option `networking.hostName' has conflicting definition values:\n" +
        "- In `<dir>/keel.config.ts': \"box\"\n- In `<dir>/other.ts': \"other\"\n" +
        "Fix: use `mkForce(value)` to force one value, or `mkDefault(value)` to lower the priority of the others.\n",
    );
    writeFileSync(
      path.join(dir, "keel.config.ts"),
      project(
        `const box = defineModule({ imports: [other], networking: { hostName: mkForce("box") }, fileSystems: { "/": { device: "/dev/vda", fsType: "ext4" } } });\nexport default defineProject({ systems: { box } });`,
        'import other from "./other";',
      ),
    );
    assert.deepEqual(await runKeel(["eval", "box", "networking.hostName"], dir), {
      code: 0,
      stdout: 'networking.hostName = "box"\n',
      stderr: "",
    });
  });

  test("a missing import: the import named, whether or not the type check runs first", async () => {
    const dir = makeProject({
      "keel.config.ts": project(`export default defineProject({ systems: { box: other } });`, 'import other from "./othr";'),
      "other.ts": other,
    });
    const expected =
      "error: `<dir>/keel.config.ts' imports `./othr', which cannot be found.\n" +
      "Fix: check the path in that import statement: a relative import starts with ./ and names an existing file; a package must be installed (npm install).\n";
    assert.equal(await failure(dir, ["systems"]), expected);
    assert.equal(await failure(dir, ["systems", "--no-typecheck"]), expected);
  });

  test("a syntax error: one message, at file:line:col", async () => {
    const dir = makeProject({
      "keel.config.ts": project(`export default defineProject({ systems: { box: other } });`, 'import other from "./other";'),
      "other.ts": `${other}export const broken = {\n`,
    });
    const expected = "error: The project's config files do not parse:\n<dir>/other.ts:4:1 - Expected identifier but found end of file\nFix: correct the syntax at the places above.\n";
    assert.equal(await failure(dir, ["systems"]), expected);
    assert.equal(await failure(dir, ["systems", "--no-typecheck"]), expected);    writeFileSync(path.join(dir, "other.ts"), 'import { defineModule } from "keel";\nexport default defineModule({\n  networking: { hostName: "other" }\n  time: { timeZone: "UTC" },\n});\n');
    assert.equal(
      await failure(dir, ["systems"]),
      "error: The project's config files do not parse:\n<dir>/other.ts:4:3 - Expected \"}\" but found \"time\" (is a comma missing before it?)\nFix: correct the syntax at the places above.\n",
    );
  });

  test("a failed assertion: its message, which says what to change", async () => {
    const dir = makeProject({
      "keel.config.ts": project(
        `const box = defineModule({ boot: { kernel: { source: "linux-6.9" } }, fileSystems: { "/": { device: "/dev/vda", fsType: "ext4" } } });\nexport default defineProject({ inputs: { linux: { type: "debian-source", package: "linux-source-6.1" } }, systems: { box } });`,
      ),
    });
    assert.equal(
      await failure(dir, ["eval", "box"]),
      "error: The system `box' fails an assertion:\n" +
        '- boot.kernel.source is "linux-6.9", which is not an input of this project (inputs: linux). Add it to `inputs` in keel.config.ts or name an existing one. ' +
        "(`boot.kernel.source' is set in `<dir>/keel.config.ts')\n",
    );
    const debug = await runKeel(["eval", "box", "--debug"], dir);
    assert.match(debug.stderr, /^ConfigError: The system `box' fails an assertion:\n[^]*^\s+at evaluateSystem /m, "--debug adds the stack");
  });

  test("an unknown system is a usage error naming the systems there are", async () => {
    assert.equal(
      await failure(seed, ["eval", "qemuu"], 2),
      "error: There is no system `qemuu' in `<dir>/keel.config.ts'. Its systems: qemu, aethelred.\nFix: name one of those, or add it to `systems` in defineProject.\n",
    );
  });

  test("a type error introduced after a clean check is still found: the check's cache follows the files", async () => {
    const dir = makeProject({
      "keel.config.ts": project(`export default defineProject({ systems: { box: other } });`, 'import other from "./other";'),
      "other.ts": other,
    });
    assert.equal((await runKeel(["systems"], dir)).stdout, "box\n");
    writeFileSync(path.join(dir, "other.ts"), other.replace('"other"', "false"));
    assert.match(await failure(dir, ["systems"]), /^error: A definition for option `networking\.hostName' is not of type `host name': it is the boolean false\.$/m);
  });
});

describe("config mistakes in keel's words, the type check on (the default) and off", () => {
  const rootFs = `fileSystems: { "/": { device: "/dev/vda", fsType: "ext4" } }`;

  /** keel's standard error for `args` in `dir`, the same with the type check and without it. */
  async function onBothPaths(dir: string, args: readonly string[], code = 1): Promise<string> {
    const checked = await failure(dir, args, code);
    assert.equal(await failure(dir, [...args, "--no-typecheck"], code), checked, "the same message without the type check");
    return checked;
  }

  test("a misspelled services.openssh.ports", async () => {
    const dir = makeProject({
      "keel.config.ts": project(`const box = defineModule({ services: { openssh: { enable: true, prots: [22] } } });\nexport default defineProject({ systems: { box } });`),
    });
    assert.equal(
      await onBothPaths(dir, ["eval", "box"]),
      "error: The option `services.openssh.prots' does not exist. Definition values:\n- In `<dir>/keel.config.ts': [22]\n" +
        "Did you mean `services.openssh.ports'?\nFix: rename it, or declare it under `options' in a module.\n",
    );
  });

  test("a list for fileSystems", async () => {
    const dir = makeProject({
      "keel.config.ts": project(`const box = defineModule({ fileSystems: [{ mountPoint: "/", device: "/dev/sda1", fsType: "ext4" }] });\nexport default defineProject({ systems: { box } });`),
    });
    assert.equal(
      await onBothPaths(dir, ["eval", "box"]),
      "error: A definition for option `fileSystems' is not of type `record of submodule': it is a list.\n" +
        "- In `<dir>/keel.config.ts': [{ mountPoint: \"/\", device: \"/dev/sda1\", fsType: \"ext4\" }]\n" +
        "Fix: give `fileSystems' a value of type `record of submodule' in `<dir>/keel.config.ts'.\n",
    );
  });

  test("a system given as a string", async () => {
    const dir = makeProject({ "keel.config.ts": project(`export default defineProject({ systems: { box: "./box.ts" } });`) });
    assert.equal(
      await onBothPaths(dir, ["systems"]),
      "error: `<dir>/keel.config.ts' does not export a valid project:\n" +
        "- systems.box: a module (made with defineModule, usually imported from its file) or a list of modules, not the string \"./box.ts\"\n" +
        "Fix: `export default defineProject({ inputs: { … }, systems: { name: module } })`; see examples/seed/keel.config.ts.\n",
    );
  });

  test("a config that reads a key with node:fs type-checks and evaluates", async () => {
    const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILNrVd+R0QrghnIwqkLrsDX+0KkkkeRoR8+HQYBICs5p me@laptop";
    const dir = makeProject({
      "me.pub": `${key}\n`,
      "keel.config.ts": project(
        `const key = readFileSync(new URL("./me.pub", import.meta.url), "utf8").trim();\n` +
          `const box = defineModule({ users: { users: { root: { openssh: { authorizedKeys: { keys: [key] } } } } }, ${rootFs} });\n` +
          "export default defineProject({ systems: { box } });",
        'import { readFileSync } from "node:fs";',
      ),
    });
    assert.deepEqual(await runKeel(["eval", "box", "users.users.root.openssh.authorizedKeys.keys", "--json"], dir), { code: 0, stdout: `${JSON.stringify([key], null, 2)}\n`, stderr: "" });
  });

  test("a getter that throws names the user's file and line", async () => {
    const dir = makeProject({
      "keel.config.ts": project(`export default defineProject({ systems: { box } });`, 'import box from "./box";'),
      "box.ts": `import { defineModule } from "keel";\nexport default defineModule({\n  networking: { get hostName(): string { throw new Error("no name today"); } },\n});\n`,
    });
    assert.equal(
      await onBothPaths(dir, ["eval", "box"]),
      "error: The getter for `networking.hostName' in `<dir>/box.ts' threw: no name today\nThrown at <dir>/box.ts:3:48.\n" +
        "Fix: correct the getter at that line; --debug shows the whole stack.\n",
    );
  });

  test("an import that throws names the file that threw", async () => {
    const dir = makeProject({
      "keel.config.ts": project(`export default defineProject({ systems: { box } });`, 'import box from "./box";'),
      "box.ts": `import { defineModule } from "keel";\nconst table: Record<string, string> = {};\nif (table.x === undefined) throw new Error("table has no x");\nexport default defineModule({});\n`,
    });
    assert.equal(
      await onBothPaths(dir, ["systems"]),
      "error: While `<dir>/keel.config.ts' was loaded, `<dir>/box.ts' threw: table has no x\nThrown at <dir>/box.ts:3:34.\n" +
        "Fix: correct the code at that line; --debug shows the whole stack.\n",
    );
  });

  test("a module file without a default export", async () => {
    const files = {
      "keel.config.ts": project(`export default defineProject({ systems: { box } });`, 'import box from "./box";'),
      "box.ts": `import { defineModule } from "keel";\nexport const web = defineModule({ networking: { hostName: "web" } });\n`,
    };
    assert.equal(
      await onBothPaths(makeProject(files), ["systems"]),
      "error: `<dir>/keel.config.ts' imports the default export of `<dir>/box.ts', which has none. It exports: web.\n" +
        "Fix: end `<dir>/box.ts' with `export default defineModule({ … })', or import what it exports by name: `import { web } from \"./box\"'.\n",
    );
    const namespace = makeProject({ ...files, "keel.config.ts": project(`export default defineProject({ systems: { box } });`, 'import * as box from "./box";') });
    assert.equal(
      await onBothPaths(namespace, ["eval", "box"]),
      "error: `<dir>/keel.config.ts' gives systems.box the whole of `<dir>/box.ts' (`import * as …'), which has no default export; it exports: web.\n" +
        "Fix: end `<dir>/box.ts' with `export default defineModule({ … })' and import that (`import m from \"./box\"'), or import the module it exports by name (`import { web } from \"./box\"').\n",
    );
  });

  test("a project function that throws", async () => {
    const dir = makeProject({ "keel.config.ts": project(`export default defineProject(() => {\n  throw new Error("cannot list systems");\n});`) });
    assert.equal(
      await onBothPaths(dir, ["systems"]),
      "error: The project function in `<dir>/keel.config.ts' threw: cannot list systems\nThrown at <dir>/keel.config.ts:4:9.\n" +
        "Fix: correct the function at that line; --debug shows the whole stack.\n",
    );
  });

  test("an import cycle names both files and the import to remove", async () => {
    const dir = makeProject({
      "keel.config.ts": project(`export default defineProject({ systems: { a } });`, 'import a from "./a";'),
      "a.ts": `import { defineModule } from "keel";\nimport b from "./b";\nexport default defineModule({ imports: [b], ${rootFs} });\n`,
      "b.ts": `import { defineModule } from "keel";\nimport a from "./a";\nexport default defineModule({ imports: [a], time: { timeZone: "UTC" } });\n`,
    });
    assert.equal(
      await failure(dir, ["eval", "a", "--no-typecheck"]),
      "error: `<dir>/b.ts' imports a module that is undefined as imports[0]: its files import each other (b.ts → a.ts → b.ts), " +
        "so when `<dir>/b.ts' runs, `<dir>/a.ts' has not finished and its default export does not exist yet.\n" +
        "Fix: keel includes each module once however often it is imported, so one direction is enough: remove the import of `a.ts' from `<dir>/b.ts' " +
        "(it is already imported the other way), or move what both need into a third module that both import.\n",
    );
    assert.equal(await failure(dir, ["eval", "a"]), await failure(dir, ["eval", "a", "--no-typecheck"]));
  });

  test("what only the type check sees is said with the option's path and keel's type names", async () => {
    const dir = makeProject({
      "keel.config.ts": project(
        `export const unused = defineModule({ users: { users: { alice: { descripton: "A" } } } });\n` +
          `export const wrong = defineModule({ networking: { hostName: 42 } });\n` +
          `const box = defineModule({ ${rootFs} });\nexport default defineProject({ systems: { box } });`,
      ),
    });
    assert.equal(
      await failure(dir, ["systems"]),
      "error: The project's config files have 2 type errors:\n" +
        "<dir>/keel.config.ts:3:65 - The option `users.users.alice.descripton' does not exist. Did you mean `users.users.alice.description'?\n" +
        "<dir>/keel.config.ts:4:51 - The option `networking.hostName' takes 'string', not 'number'.\n" +
        "Fix: correct the code at the places above; an editor with TypeScript shows the same errors as you type.\n",
    );
  });

  test("a project that loads its own copy of keel: its errors are still the user's, with the user's file", async () => {
    const dir = makeProject({
      "keel.config.ts": project(
        "const decl = defineModule({\n" +
          '  options: { site: mkOption({ type: types.submodule({ port: mkOption({ type: types.port, default: 80, description: "The port." }) }), default: {}, description: "A site." }) },\n' +
          `  config: { ${rootFs} },\n});\n` +
          "const box = defineModule({ imports: [decl], config: { site: { prot: 8080 } } as never });\nexport default defineProject({ systems: { box } });",
      ).replace("mkForce }", "mkForce, mkOption, types }"),
    });
    // A second install of keel (npm install in the project while keel runs from elsewhere): a copy, not a link.
    rmSync(path.join(dir, "node_modules/keel"));
    mkdirSync(path.join(dir, "node_modules/keel"));
    cpSync(path.join(root, "dist"), path.join(dir, "node_modules/keel/dist"), { recursive: true });
    cpSync(path.join(root, "package.json"), path.join(dir, "node_modules/keel/package.json"));
    symlinkSync(path.join(root, "node_modules/zod"), path.join(dir, "node_modules/zod"));
    assert.equal(
      await failure(dir, ["eval", "box", "--no-typecheck"]),
      "error: The option `site.prot' does not exist. Definition values:\n- In `<dir>/keel.config.ts': 8080\nDid you mean `site.port'?\n" +
        "Fix: rename it, or declare it under `options' in a module.\n",
    );
  });

  test("a \"type\": \"module\" project: definitions name the user's files", async () => {
    const dir = makeProject({
      "package.json": '{ "type": "module" }\n',
      "keel.config.ts": project(`export default defineProject({ systems: { box } });`, 'import box from "./box";'),
      "box.ts": 'import { defineModule } from "keel";\nexport default defineModule({ networking: { hostName: 3 as unknown as string } });\n',
    });
    assert.equal(
      await onBothPaths(dir, ["eval", "box"]),
      "error: A definition for option `networking.hostName' is not of type `host name': it is the integer 3.\n" +
        "- In `<dir>/box.ts': 3\nFix: give `networking.hostName' a value of type `host name' in `<dir>/box.ts'.\n",
    );
  });

  test("imports computed from config are an error when the modules they bring change it, never a wrong set of modules", async () => {
    const dir = makeProject({
      "keel.config.ts": project(
        'const gui = defineModule({ virtualisation: { graphics: true }, packages: ["xterm"] });\n' +
          `const box = defineModule(({ config }) => ({ imports: config.virtualisation.graphics ? [] : [gui], ${rootFs} }));\n` +
          "export default defineProject({ systems: { box } });",
      ),
    });
    assert.equal(
      await onBothPaths(dir, ["eval", "box", "packages"]),
      "error: The module function in `<dir>/keel.config.ts' computes its `imports' from `config': they differ once the configuration is known. " +
        "Imports are needed before there is a configuration to read (NixOS stops with infinite recursion here).\n" +
        "Fix: import the module always and make its definitions conditional in it, e.g. `config: mkIf(config.virtualisation.graphics, { … })`, " +
        "or give it an `enable` option and set that instead.\n",
    );
  });

  test("--project given a directory", async () => {
    assert.equal(
      await failure(scratch, ["systems", "--project", seed], 2),
      `error: --project: \`${seed}' is a directory; --project takes the project file.\nFix: --project ${seed}/keel.config.ts\n`,
    );
  });
});

describe("keel eval of one option evaluates only what it needs", () => {
  test("another option's getter that throws, and another's type error, stop the whole system but not networking.hostName", async () => {
    const dir = makeProject({
      "keel.config.ts": project(
        "const broken = defineModule({\n" +
          '  time: { get timeZone(): string { throw new Error("the time zone is broken"); } },\n' +
          '  services: { openssh: { ports: ["not a port"] } },\n' +
          "});\n" +
          "export default defineProject({ systems: { q: defineModule({ imports: [qemu, broken] }) } });",
        `import qemu from ${JSON.stringify(path.join(seed, "qemu.ts"))};`,
      ),
    });
    const one = await runKeel(["--no-typecheck", "eval", "q", "networking.hostName"], dir);
    assert.equal(one.code, 0, one.stderr);
    assert.equal(one.stdout, 'networking.hostName = "q"\n');
    const whole = await failure(dir, ["--no-typecheck", "eval", "q"]);
    assert.match(whole, /the time zone is broken|not a port/);
  });
});
