// SSH's pure parts: the remote command line (each word quoted, checked by
// real shells), ssh's and rsync's command lines for a real machine and for a
// VM, rsync's own splitting of -e (checked by a real rsync), and the private
// directory for control sockets.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { joinDashValues } from "../../src/cli/command.ts";
import { installCommand } from "../../src/cli/install.ts";
import { defaultControlDir, ensureControlDir, Remote, remoteCommand, rsyncQuote } from "../../src/host/ssh.ts";

const scratch = mkdtempSync(path.join(os.tmpdir(), "keel ssh 'unit' "));
after(() => rmSync(scratch, { recursive: true, force: true }));
const uid = process.getuid?.() ?? 0;

/** Words a remote shell must not touch. */
const awkward = ["a b", "it's", `say "hi"`, "$HOME", "`id`", "$(id)", "a;b", "a && b", "x|y", "*", "~", "line one\nline two", "", " ", "back\\slash", "-n", "#no comment", "tab\there", "{a,b}", "!"];

/** What a remote shell passes to a program for `command`: printf prints each argument, NUL-terminated. */
function argumentsSeenBy(shell: string, command: string): string[] {
  const output = execFileSync(shell, ["-c", command], { encoding: "utf8" });
  return output.split("\0").slice(0, -1);
}

describe("--ssh-opts on the command line", () => {
  it("takes the next argument whole, though it starts with a dash: --ssh-opts '-p 8022' as the seed's NIX_SSHOPTS", () =>
    assert.deepEqual(joinDashValues(["aethelred", "--target-host", "root@localhost", "--ssh-opts", "-p 8022", "--yes"], installCommand.options), [
      "aethelred",
      "--target-host",
      "root@localhost",
      "--ssh-opts=-p 8022",
      "--yes",
    ]));

  it("leaves other options, --ssh-opts=… and what follows -- alone", () =>
    assert.deepEqual(joinDashValues(["--target-host", "-x", "--ssh-opts=-p 1", "--", "--ssh-opts", "-v"], installCommand.options), ["--target-host", "-x", "--ssh-opts=-p 1", "--", "--ssh-opts", "-v"]));
});

describe("the remote command line", () => {
  it("quotes each word, and the program's name always", () => {
    assert.equal(remoteCommand(["echo", "a b", "it's", "", "plain"]), "'echo' 'a b' 'it'\\''s' '' plain");
  });

  for (const shell of ["sh", "bash"]) {
    it(`${shell} passes spaces, quotes, $, ;, newlines and empty words to the program intact`, () => {
      assert.deepEqual(argumentsSeenBy(shell, remoteCommand(["printf", "%s\\0", ...awkward])), awkward);
    });
  }

  it("an argument that looks like an assignment or a reserved word stays a program's name", () => {
    const seen = spawnSync("sh", ["-c", remoteCommand(["A=b", "true"])], { encoding: "utf8" });
    assert.equal(seen.status, 127, "A=b is looked up as a program, not set as a variable");
    assert.equal(spawnSync("sh", ["-c", remoteCommand(["if", "true"])], { encoding: "utf8" }).status, 127);
  });

  it("an empty command is refused", () => {
    assert.throws(() => remoteCommand([]), /empty argv/);
  });
});

describe("ssh's command line", () => {
  const control = "/run/user/1000/keel-ssh-1000";

  it("a real machine: OpenSSH's own config, agent and known_hosts decide; only the control master is keel's", () => {
    const remote = new Remote({ target: "deploy@web1.example.org", controlDir: control });
    assert.deepEqual(remote.sshArgv(remoteCommand(["uname", "-r"])), [
      "ssh", "-o", "ControlMaster=auto", "-o", `ControlPath=${control}/%C`, "-o", "ControlPersist=300", "--", "deploy@web1.example.org", "'uname' -r",
    ]);
    assert.ok(!remote.sshArgv().includes("-F"));
  });

  it("options given win over keel's (OpenSSH takes an option's first value); -O goes before them", () => {
    const remote = new Remote({ target: "web1", port: 2200, options: ["-o", "ControlMaster=no"], connectTimeout: 5, controlDir: control });
    assert.deepEqual(remote.sshArgv(undefined, ["-O", "check"]), [
      "ssh", "-O", "check", "-o", "ControlMaster=no", "-p", "2200", "-o", "ConnectTimeout=5",
      "-o", "ControlMaster=auto", "-o", `ControlPath=${control}/%C`, "-o", "ControlPersist=300", "--", "web1",
    ]);
  });

  it("paths in ssh's options are quoted for its own splitting, and a % is doubled", () => {
    const remote = new Remote({ target: "h", identity: "/k/100%", knownHosts: { file: `/a b/it's "q" \\`, alias: "h1" }, controlDir: "/c d/%" });
    const options = remote.sshOptions();
    assert.ok(options.includes("IdentityFile=/k/100%%"));
    assert.ok(options.includes(`UserKnownHostsFile="/a b/it's \\"q\\" \\\\"`));
    assert.ok(options.includes(`ControlPath="/c d/%%/%C"`));
  });

  it("rsync goes through the same ssh options, quoted for rsync's -e; an IPv6 host is bracketed", () => {
    const remote = new Remote({ target: "root@::1", identity: "/keys/it's key", controlDir: control });
    const e = `ssh -o 'IdentityFile="/keys/it''s key"' -o IdentitiesOnly=yes -o ControlMaster=auto -o ControlPath=${control}/%C -o ControlPersist=300`;
    assert.deepEqual(remote.rsyncArgv("to", ["/src/", "a b"], "/dst", { delete: true }), ["rsync", "--archive", "-s", "--stats", "--delete", "-e", e, "--", "/src/", "a b", "root@[::1]:/dst"]);
    assert.deepEqual(remote.rsyncArgv("from", ["/etc/hostname", "/etc/os-release"], "/here", { onProgress: () => undefined }), [
      "rsync", "--archive", "-s", "--stats", "--info=progress2", "-e", e, "--", "root@[::1]:/etc/hostname", "root@[::1]:/etc/os-release", "/here",
    ]);
    assert.equal(rsyncQuote("plain/path-1.2"), "plain/path-1.2");
    assert.equal(rsyncQuote(""), "''");
  });

  it("rsync splits its -e back into the words ssh gets", () => {
    // A stand-in for ssh that records its arguments.
    const seen = path.join(scratch, "seen");
    const fake = path.join(scratch, "fake ssh");
    writeFileSync(fake, `#!/bin/sh\nprintf '%s\\0' "$@" > "$KEEL_SEEN"\nexit 1\n`);
    chmodSync(fake, 0o755);
    const remote = new Remote({ target: "root@h", port: 22, identity: path.join(scratch, `it's "the" key`), options: ["-o", "SetEnv=A=b c"], controlDir: control });
    const argv = remote.rsyncArgv("to", [fake], "/tmp");
    const e = argv.indexOf("-e") + 1;
    argv[e] = `${rsyncQuote(fake)}${(argv[e] ?? "").slice("ssh".length)}`;
    spawnSync(argv[0] ?? "", argv.slice(1), { env: { ...process.env, KEEL_SEEN: seen } });
    const words = readFileSync(seen, "utf8").split("\0");
    assert.deepEqual(words.slice(0, remote.sshOptions().length), remote.sshOptions());
  });
});

describe("the directory for control sockets", () => {
  it("is under $XDG_RUNTIME_DIR when a socket's path fits there, else under /tmp", () => {
    assert.equal(defaultControlDir({ XDG_RUNTIME_DIR: "/run/user/1000" }), `/run/user/1000/keel-ssh-${uid}`);
    assert.equal(defaultControlDir({ XDG_RUNTIME_DIR: `/${"r".repeat(60)}` }), `/tmp/keel-ssh-${uid}`);
    assert.equal(defaultControlDir({}), `/tmp/keel-ssh-${uid}`);
  });

  it("is made private, and refused when others could write to it", () => {
    const dir = path.join(scratch, "control");
    ensureControlDir(dir);
    assert.ok(existsSync(dir));
    chmodSync(dir, 0o755);
    assert.throws(() => ensureControlDir(dir), {
      message: `The directory ${dir} for keel's SSH connections is not private (owner uid ${uid}, mode 755).\nFix: remove it (\`rm -r ${dir}\`); keel makes it again.`,
    });
    const link = path.join(scratch, "link");
    mkdirSync(path.join(scratch, "elsewhere"), { mode: 0o700 });
    symlinkSync(path.join(scratch, "elsewhere"), link);
    assert.throws(() => ensureControlDir(link), /is not private \(not a directory\)/);
  });

  it("too long for a socket's path is refused with the fix", () => {
    assert.throws(() => ensureControlDir(`/${"d".repeat(60)}`), /too long for SSH control sockets \(119 > 107 bytes\)\.\nFix: use a shorter directory\./);
  });
});
