// Remote against a real sshd: one of the test's own on a free loopback port,
// with a throwaway config, host key and authorized key, in a directory whose
// name has a space and a quote, and the client's files in one with a %, so
// that every path in ssh's and rsync's command lines needs quoting. Arguments arrive intact; one login serves
// every command; files copy both ways; failures and timeouts say so.
import assert from "node:assert/strict";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { ProcessError } from "../../src/errors.ts";
import { Remote } from "../../src/host/ssh.ts";
import { freePort } from "./processes.ts";

const scratch = mkdtempSync(path.join(os.tmpdir(), "keel ssh 'e2e' "));
const user = os.userInfo().username;
const client = path.join(scratch, `100% "c"`);

describe("Remote, against a real sshd", () => {
  let sshd: ChildProcess;
  let sshdLog = "";
  let remote: Remote;
  let port: number;

  before(async () => {
    port = await freePort();
    mkdirSync(client);
    const key = path.join(client, "key");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key]);
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(scratch, "host_key")]);
    writeFileSync(path.join(scratch, "authorized_keys"), readFileSync(`${key}.pub`));
    writeFileSync(
      path.join(scratch, "sshd_config"),
      [
        `ListenAddress 127.0.0.1`,
        `Port ${port}`,
        `HostKey "${path.join(scratch, "host_key")}"`,
        `AuthorizedKeysFile "${path.join(scratch, "authorized_keys")}"`,
        "PidFile none",
        "UsePAM no",
        "StrictModes no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        "",
      ].join("\n"),
    );
    // sshd's privilege separation directory, which its service would make.
    if (process.getuid?.() === 0) mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
    sshd = spawn("/usr/sbin/sshd", ["-D", "-e", "-f", path.join(scratch, "sshd_config")], { stdio: ["ignore", "ignore", "pipe"] });
    await new Promise<void>((resolve, reject) => {
      sshd.stderr?.on("data", (chunk: Buffer) => {
        sshdLog += chunk.toString();
        if (sshdLog.includes("Server listening")) resolve();
      });
      sshd.once("exit", (code) => reject(new Error(`sshd exited (${code}):\n${sshdLog}`)));
    });
    remote = new Remote({
      target: `${user}@127.0.0.1`,
      port,
      identity: key,
      knownHosts: { file: path.join(client, "known_hosts"), alias: "keel-test" },
      options: ["-o", "BatchMode=yes"],
      controlDir: path.join(client, "control"),
    });
  });

  after(async () => {
    await remote.disconnect();
    sshd.kill();
    rmSync(scratch, { recursive: true, force: true });
  });

  test("arguments with spaces, quotes, $, ;, newlines and empty strings arrive intact", async () => {
    const words = ["a b", "it's", `say "hi"`, "$HOME", "$(id)", "a;b", "x|y", "*", "line one\nline two", "", "back\\slash", "-n"];
    const result = await remote.exec(["printf", "%s\\0", ...words]);
    assert.deepEqual(result.stdout.split("\0").slice(0, -1), words);
    assert.match(readFileSync(path.join(client, "known_hosts"), "utf8"), /^keel-test ssh-ed25519 /m, "the host key is learnt on first contact");
  });

  test("one login serves every command: the control master", async () => {
    assert.equal(await remote.connected(), true);
    assert.equal(readdirSync(remote.controlDir).length, 1, "one socket");
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const started = performance.now();
      assert.equal((await remote.exec(["hostname"])).stdout, `${os.hostname()}\n`);
      times.push(performance.now() - started);
    }
    // Each still starts the remote user's shell, which reads ~/.bashrc when sshd runs it.
    console.log(`# exec through the master: ${times.map((t) => t.toFixed(0)).join(" ")} ms`);
    assert.equal(sshdLog.match(/Accepted publickey/g)?.length, 1, sshdLog);
  });

  test("a failing command: its exit code, and a ProcessError that names it and the host", async () => {
    assert.equal((await remote.exec(["sh", "-c", "exit 3"], { nothrow: true })).exitCode, 3);
    await assert.rejects(remote.exec(["ls", "/no such dir"]), (error: unknown) => {
      assert.ok(error instanceof ProcessError);
      assert.match(error.message, new RegExp(`^\`ls '/no such dir'' on ${user}@127\\.0\\.0\\.1 \\(port ${port}\\) failed with exit code 2\\.\\nIts last lines of output:\\n  ls: cannot access '/no such dir': No such file or directory$`));
      return true;
    });
  });

  test("a timeout kills the command", async () => {
    const started = performance.now();
    await assert.rejects(remote.exec(["sleep", "10"], { timeout: 500 }), { message: `\`sleep 10' on ${user}@127.0.0.1 (port ${port}) was killed after 500 ms.` });
    assert.ok(performance.now() - started < 5000);
  });

  test("a host that does not answer: ssh's error and what to check", async () => {
    const closed = await freePort();
    const nowhere = new Remote({ target: `${user}@127.0.0.1`, port: closed, options: ["-o", "BatchMode=yes"], controlDir: remote.controlDir });
    await assert.rejects(nowhere.exec(["true"]), (error: unknown) => {
      assert.ok(error instanceof ProcessError);
      assert.match(error.message, /failed with exit code 255\.\nIts last lines of output:\n {2}ssh: connect to host 127\.0\.0\.1 port \d+: Connection refused\n/);
      assert.ok(error.message.endsWith(`Fix: check that \`ssh -p ${closed} ${user}@127.0.0.1 true\` logs in (address, port, key, known host key).`));
      return true;
    });
  });

  test("files copy there and back with rsync, names with spaces and quotes intact; bytes counted", async () => {
    const source = path.join(scratch, "source");
    mkdirSync(path.join(source, "sub dir"), { recursive: true });
    writeFileSync(path.join(source, "sub dir", "it's a file"), "x".repeat(100_000));
    writeFileSync(path.join(source, "small"), "small\n");
    const there = path.join(scratch, "there 'remote'");
    const progress: number[] = [];
    const { sent, changes, ...copied } = await remote.copyTo([`${source}/`], there, { onProgress: (bytes) => progress.push(bytes) });
    assert.deepEqual(copied, { files: 2, bytes: 100_006 });
    assert.deepEqual(changes, [], "nothing itemized unless asked");
    assert.ok(sent >= 100_006 && sent < 110_000, `the bytes that travelled, rsync's protocol included: ${sent}`);
    assert.equal(progress.at(-1), 100_006);
    assert.equal(readFileSync(path.join(there, "sub dir", "it's a file"), "utf8").length, 100_000);
    const again = await remote.copyTo([`${source}/`], there);
    assert.deepEqual({ files: again.files, bytes: again.bytes }, { files: 0, bytes: 0 }, "unchanged files are not sent again");
    assert.ok(again.sent < 1000, `only the file list travels: ${again.sent} bytes`);
    const back = path.join(scratch, "back");
    const fetched = await remote.copyFrom([path.join(there, "small")], `${back}/`);
    assert.deepEqual({ files: fetched.files, bytes: fetched.bytes }, { files: 1, bytes: 6 });
    assert.equal(readFileSync(path.join(back, "small"), "utf8"), "small\n");
    assert.equal(sshdLog.match(/Accepted publickey/g)?.length, 1, "rsync shares the master");
  });

  test("a failed copy names what it copied", async () => {
    await assert.rejects(remote.copyFrom(["/no/such/file"], path.join(scratch, "back")), {
      message: new RegExp(`^rsync of ${user}@127\\.0\\.0\\.1:/no/such/file to .* failed with exit code 23\\.\\nIts last lines of output:\\n`),
    });
  });

  test("interactive returns the remote command's exit code", async () => {
    assert.equal(await remote.interactive(["sh", "-c", "exit 4"]), 4);
  });

  test("disconnect closes the master", async () => {
    await remote.disconnect();
    assert.equal(await remote.connected(), false);
    assert.deepEqual(readdirSync(remote.controlDir), [], "its socket is gone");
  });
});
