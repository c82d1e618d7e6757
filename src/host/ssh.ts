// Another machine reached over SSH: a VM's guest now, a deployed host later.
// Commands are argvs, quoted word by word for the remote shell (the only
// shell text keel writes); files go over rsync through the same ssh options;
// and every connection to a host shares one OpenSSH control master, so that
// after the first login a command costs milliseconds, not a key exchange.
// Without options OpenSSH's own config, agent and known_hosts decide, as for
// a plain `ssh host`.
import { spawn } from "node:child_process";
import { lstatSync, mkdirSync } from "node:fs";
import path from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { ConfigError, ProcessError } from "../errors.js";
import { exec, runInteractive, shellQuote, showCommand, type ExecOptions, type ExecResult } from "./exec.js";

export interface RemoteSpec {
  /** `user@host`, or `host` (OpenSSH's config then names the user). */
  readonly target: string;
  readonly port?: number;
  /** The key to log in with; only it is offered (an agent's other keys would use up sshd's MaxAuthTries). */
  readonly identity?: string;
  /** For hosts keel pins itself (VMs): the file their key is kept in, under this name, learnt on first contact. */
  readonly knownHosts?: { readonly file: string; readonly alias: string };
  /** More ssh options as argv words, e.g. ["-o", "ProxyJump=bastion"]; they win over keel's. */
  readonly options?: readonly string[];
  /** Seconds to wait for the connection and the key exchange. */
  readonly connectTimeout?: number;
  /** Where the control masters' sockets live (default: a private directory under $XDG_RUNTIME_DIR or /tmp). */
  readonly controlDir?: string;
  readonly env?: NodeJS.ProcessEnv;
}

export type RemoteExecOptions = Pick<ExecOptions, "log" | "onOutput" | "timeout" | "nothrow" | "signal">;

export interface CopyOptions extends Pick<ExecOptions, "log" | "timeout" | "signal"> {
  /** Deletes files in the destination that the sources do not have. */
  readonly delete?: boolean;
  /** Called as bytes arrive: the bytes so far and rsync's estimate of the percentage done. */
  readonly onProgress?: (bytes: number, percent: number) => void;
  /** More rsync options, e.g. ["--hard-links", "--link-dest=…"]. */
  readonly flags?: readonly string[];
  /** A command rsync runs under (a user namespace in which the files have their owners). */
  readonly within?: readonly string[];
}

/** One line of rsync's --itemize-changes: what happens to a path in the destination. */
export interface ItemizedChange {
  /** rsync's %i: `>f+++++++++` a new file, `>f.st......` one whose size and time differ, `cL.c.......` a symlink pointing elsewhere, `*deleting` one only the destination has. */
  readonly flags: string;
  /** Relative to the copy's top; a directory's ends in /. */
  readonly path: string;
}

export interface CopyResult {
  /** Regular files that were sent (unchanged ones are skipped). */
  readonly files: number;
  /** Their size in bytes. */
  readonly bytes: number;
  /** What went over the connection, rsync's deltas and protocol included. */
  readonly sent: number;
  /** The changes rsync itemized (with --itemize-changes among the flags; else none). */
  readonly changes: readonly ItemizedChange[];
}

/** The --itemize-changes lines in rsync's output; a symlink's " -> target" is dropped. */
export function itemizedChanges(output: string): ItemizedChange[] {
  const changes: ItemizedChange[] = [];
  for (const line of output.split("\n")) {
    const match = /^(\*deleting|[<>ch.][fdLDS][^\s]{9})\s+(.+)$/.exec(line);
    if (match === null) continue;
    const flags = match[1] as string;
    const name = match[2] as string;
    changes.push({ flags, path: flags[1] === "L" ? name.replace(/ -> .*$/, "") : name });
  }
  return changes;
}

/** The longest path a unix socket may have (sockaddr_un's 108 bytes, with the terminating NUL). */
const maxSocketPath = 107;
/** ssh names a master's socket by %C (40 hex digits) and first binds it under that name and a 17-byte suffix. */
const socketNameLength = 1 + 40 + 17;
/** How long a master outlives its last session. */
const controlPersistSeconds = 300;

/**
 * `--ssh-opts '-p 8022 -o "ProxyJump=a b"'` as ssh's argv words: split at
 * white space, quotes group words (as NIX_SSHOPTS is read by a shell);
 * undefined for an unterminated quote.
 */
export function splitSshOptions(text: string): string[] | undefined {
  const words: string[] = [];
  let word: string | null = null;
  let quote: string | null = null;
  for (const c of text) {
    if (quote !== null) {
      if (c === quote) quote = null;
      else word += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      word ??= "";
    } else if (/\s/.test(c)) {
      if (word !== null) words.push(word);
      word = null;
    } else word = (word ?? "") + c;
  }
  if (quote !== null) return undefined;
  if (word !== null) words.push(word);
  return words;
}

/**
 * The command line the remote shell runs for argv: each word quoted, so that
 * the program gets exactly these arguments. The program's name is quoted
 * even when plain, so that it is never taken for an assignment (A=b), a
 * reserved word (if) or an alias.
 */
export function remoteCommand(argv: readonly string[]): string {
  const [program, ...args] = argv;
  if (program === undefined) throw new Error("remoteCommand: empty argv");
  const name = shellQuote(program);
  return [name.startsWith("'") ? name : `'${name}'`, ...args.map(shellQuote)].join(" ");
}

/** Quotes one word for rsync's -e, which splits at spaces and reads '' inside quotes as a quote (no backslashes, unlike a shell). */
export function rsyncQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", "''")}'`;
}

/**
 * A file's path as a value of ssh's -o, which splits at spaces (honouring
 * quotes and backslashes) and expands tokens (%C), so a % is %%; `tokens`
 * follows as it is, e.g. "/%C".
 */
function sshPath(file: string, tokens = ""): string {
  const literal = file.replaceAll("%", "%%") + tokens;
  return /[\s"'\\#]/.test(literal) ? `"${literal.replace(/["\\]/g, "\\$&")}"` : literal;
}

/** The directory for control sockets: short enough for sockaddr_un wherever $XDG_RUNTIME_DIR is. */
export function defaultControlDir(env: NodeJS.ProcessEnv): string {
  const name = `keel-ssh-${process.getuid?.() ?? 0}`;
  const runtime = env.XDG_RUNTIME_DIR;
  const fits = runtime !== undefined && runtime !== "" && path.join(runtime, name).length + socketNameLength <= maxSocketPath;
  return path.join(fits ? runtime : "/tmp", name);
}

/**
 * Makes the control directory, or checks the one there: whoever can write to
 * it could put a socket in a master's place and see every command.
 */
export function ensureControlDir(dir: string): void {
  if (dir.length + socketNameLength > maxSocketPath) {
    throw new ConfigError(`The directory ${dir} is too long for SSH control sockets (${dir.length + socketNameLength} > ${maxSocketPath} bytes).\nFix: use a shorter directory.`);
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const stat = lstatSync(dir);
  const uid = process.getuid?.() ?? stat.uid;
  if (!stat.isDirectory() || stat.uid !== uid || (stat.mode & 0o077) !== 0) {
    const what = stat.isDirectory() ? `owner uid ${stat.uid}, mode ${(stat.mode & 0o777).toString(8)}` : "not a directory";
    throw new ConfigError(`The directory ${dir} for keel's SSH connections is not private (${what}).\nFix: remove it (\`rm -r ${dir}\`); keel makes it again.`);
  }
}

/** How commands there get root: sudo without a password (NOPASSWD), or with this one, given on sudo's standard input. */
export interface Sudo {
  readonly password: string | null;
}

/**
 * The bash text that feeds the sudo password to ssh's standard input ahead
 * of rsync's protocol (rsync's -e runs it with ssh's arguments). bash becomes
 * ssh, so that rsync sees its end; a shell waiting for a pipeline would hold
 * rsync's pipe open.
 */
const passwordFirst = 'exec ssh "$@" < <(printf "%s\\n" "$KEEL_SUDO_PASSWORD"; exec cat)';

export class Remote {
  readonly controlDir: string;
  private sudo: Sudo | undefined;

  constructor(readonly spec: RemoteSpec) {
    this.controlDir = spec.controlDir ?? defaultControlDir(spec.env ?? process.env);
  }

  /**
   * From now on every command, pipe and copy there runs as root through
   * sudo. With a password, each sudo is given it on its standard input ahead
   * of the command's own (-k: sudo always reads it, so it never reaches the
   * command), and the user is asked for it once.
   */
  elevate(sudo: Sudo): void {
    this.sudo = sudo;
  }

  /** argv as it runs there: through sudo when elevated. */
  private asRoot(argv: readonly string[]): readonly string[] {
    if (this.sudo === undefined) return argv;
    return ["sudo", ...(this.sudo.password === null ? ["-n"] : ["-k", "-S", "-p", ""]), "--", ...argv];
  }

  /** What goes to a command's standard input before its own: the sudo password's line, if any. */
  private get passwordLine(): string {
    return this.sudo?.password == null ? "" : `${this.sudo.password}\n`;
  }

  /** The environment of local processes that talk to the host (rsync's -e reads the password from it). */
  private get env(): NodeJS.ProcessEnv | undefined {
    const password = this.sudo?.password;
    return password == null ? this.spec.env : { ...(this.spec.env ?? process.env), KEEL_SUDO_PASSWORD: password };
  }

  /** How messages name the host. */
  get where(): string {
    return `${this.spec.target}${this.spec.port === undefined ? "" : ` (port ${this.spec.port})`}`;
  }

  /** ssh's options for this host, without the program and the target (rsync's -e takes them too). */
  sshOptions(): string[] {
    const { port, identity, knownHosts, connectTimeout } = this.spec;
    return [
      ...(this.spec.options ?? []),
      ...(port === undefined ? [] : ["-p", String(port)]),
      ...(identity === undefined ? [] : ["-o", `IdentityFile=${sshPath(identity)}`, "-o", "IdentitiesOnly=yes"]),
      ...(knownHosts === undefined
        ? []
        : ["-o", `UserKnownHostsFile=${sshPath(knownHosts.file)}`, "-o", "StrictHostKeyChecking=accept-new", "-o", `HostKeyAlias=${knownHosts.alias}`, "-o", "HashKnownHosts=no"]),
      ...(connectTimeout === undefined ? [] : ["-o", `ConnectTimeout=${connectTimeout}`]),
      "-o", "ControlMaster=auto",
      "-o", `ControlPath=${sshPath(this.controlDir, "/%C")}`,
      "-o", `ControlPersist=${controlPersistSeconds}`,
    ];
  }

  /** The ssh command line that runs `command` (shell text) there, or a login shell without one. */
  sshArgv(command?: string, before: readonly string[] = []): string[] {
    return ["ssh", ...before, ...this.sshOptions(), "--", this.spec.target, ...(command === undefined ? [] : [command])];
  }

  /** Runs argv there; a failure names the remote command, not ssh's options. */
  async exec(argv: readonly string[], options: RemoteExecOptions = {}): Promise<ExecResult> {
    ensureControlDir(this.controlDir);
    const input = this.passwordLine;
    const result = await exec(this.sshArgv(remoteCommand(this.asRoot(argv))), { ...options, env: this.spec.env, nothrow: true, ...(input === "" ? {} : { input }) });
    if (result.exitCode === 0 || options.nothrow) return result;
    throw this.failure(`\`${showCommand(argv)}' on ${this.where}`, result, options.timeout);
  }

  /** Runs argv there, or a login shell without one, on the user's terminal; returns its exit code. */
  interactive(argv: readonly string[] = []): Promise<number> {
    ensureControlDir(this.controlDir);
    return runInteractive(this.sshArgv(argv.length === 0 ? undefined : remoteCommand(argv)), { env: this.spec.env });
  }

  /** Copies local files or directories into `destination` there (rsync's rules: a source ending in / copies its contents). */
  copyTo(sources: readonly string[], destination: string, options: CopyOptions = {}): Promise<CopyResult> {
    return this.rsync([...(options.within ?? []), ...this.rsyncArgv("to", sources, destination, options)], `${sources.join(" ")} to ${this.spec.target}:${destination}`, options);
  }

  /** Copies files or directories from there into a local `destination`. */
  copyFrom(sources: readonly string[], destination: string, options: CopyOptions = {}): Promise<CopyResult> {
    return this.rsync(this.rsyncArgv("from", sources, destination, options), `${this.spec.target}:${sources.join(" ")} to ${destination}`, options);
  }

  /** rsync's command line that copies to or from there, its ssh built from the same options. */
  rsyncArgv(direction: "to" | "from", sources: readonly string[], destination: string, options: Pick<CopyOptions, "delete" | "onProgress" | "flags"> = {}): string[] {
    const there = (remotePath: string) => this.rsyncLocation(remotePath);
    return [
      "rsync",
      "--archive",
      // --secluded-args (--protect-args before 3.2.6): file names go through rsync's protocol, never the remote shell.
      "-s",
      "--stats",
      ...(options.onProgress === undefined ? [] : ["--info=progress2"]),
      ...(options.delete ? ["--delete"] : []),
      ...(options.flags ?? []),
      ...(this.sudo === undefined ? [] : [`--rsync-path=${remoteCommand(this.asRoot(["rsync"]))}`]),
      "-e", [...(this.passwordLine === "" ? ["ssh"] : ["bash", "-c", passwordFirst, "bash"]), ...this.sshOptions()].map(rsyncQuote).join(" "),
      "--",
      ...(direction === "to" ? [...sources, there(destination)] : [...sources.map(there), destination]),
    ];
  }

  /**
   * Runs argv there with `source` as its standard input (a tar stream, a
   * kernel), telling `onBytes` how many bytes have gone so far.
   */
  async pipeTo(argv: readonly string[], source: Readable, onBytes: (bytes: number) => void = () => undefined): Promise<void> {
    ensureControlDir(this.controlDir);
    const [program, ...args] = this.sshArgv(remoteCommand(this.asRoot(argv))) as [string, ...string[]];
    const child = spawn(program, args, { env: this.spec.env, stdio: ["pipe", "ignore", "pipe"] });
    child.stdin.write(this.passwordLine);
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString("utf8")).slice(-16 * 1024)));
    const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
    let sent = 0;
    source.on("data", (chunk: Buffer) => onBytes((sent += chunk.length)));
    const piped = pipeline(source, child.stdin).catch((error: Error) => error);
    const [code, pipeError] = await Promise.all([exited, piped]);
    if (code === 0 && pipeError === undefined) return;
    const result: ExecResult = { argv: [program, ...args], exitCode: code, signal: null, stdout: "", stderr, timedOut: false, stopped: false };
    throw this.failure(`\`${showCommand(argv)}' on ${this.where} (fed ${sent} bytes)`, result, undefined);
  }

  /** Whether a master connection is up: then a command costs a few milliseconds. */
  async connected(): Promise<boolean> {
    const check = await exec(this.sshArgv(undefined, ["-O", "check"]), { env: this.spec.env, nothrow: true, timeout: 5000 });
    return check.exitCode === 0;
  }

  /** Closes the master connection, if one is up, and the sessions in it. */
  async disconnect(): Promise<void> {
    await exec(this.sshArgv(undefined, ["-O", "exit"]), { env: this.spec.env, nothrow: true, timeout: 5000 });
  }

  /** `host:path` for rsync, an IPv6 address in brackets. */
  private rsyncLocation(remotePath: string): string {
    const at = this.spec.target.lastIndexOf("@");
    const user = this.spec.target.slice(0, at + 1);
    const host = this.spec.target.slice(at + 1);
    return `${user}${host.includes(":") ? `[${host}]` : host}:${remotePath}`;
  }

  private async rsync(argv: readonly string[], what: string, options: CopyOptions): Promise<CopyResult> {
    ensureControlDir(this.controlDir);
    const { onProgress } = options;
    let partial = "";
    const onOutput =
      onProgress &&
      ((text: string) => {
        // Progress lines end in \r: "   1,980,244  98%    1.46MB/s    0:00:01 (xfr#348, to-chk=0/1274)".
        const lines = (partial + text).split(/[\r\n]/);
        partial = lines.pop() ?? "";
        for (const line of lines) {
          const progress = /^\s*([\d,.]+)\s+(\d+)%/.exec(line);
          if (progress) onProgress(Number(progress[1]?.replace(/\D/g, "")), Number(progress[2]));
        }
      });
    const result = await exec(argv, { log: options.log, timeout: options.timeout, signal: options.signal, env: this.env, onOutput, nothrow: true });
    if (result.exitCode !== 0) throw this.failure(`rsync of ${what}`, result, options.timeout);
    const count = (label: string) => Number(new RegExp(`^${label}: ([\\d,.]+)`, "m").exec(result.stdout)?.[1]?.replace(/\D/g, "") ?? 0);
    return { files: count("Number of regular files transferred"), bytes: count("Total transferred file size"), sent: count("Total bytes sent"), changes: itemizedChanges(result.stdout) };
  }

  /** A ProcessError that names what failed where; ssh's own failure (255) says what to check. */
  private failure(what: string, result: ExecResult, timeout: number | undefined): ProcessError {
    const output = `${result.stdout}${result.stderr}`.trimEnd();
    // rsync's progress lines end in \r: each is a line of its own, and none says why something failed.
    const tail = output
      .split(/\r?\n|\r/)
      .filter((line) => !/^\s*[\d,.]+\s+\d+%\s/.test(line))
      .slice(-30)
      .join("\n");
    const how = result.timedOut
      ? `was killed after ${timeout} ms`
      : result.signal
        ? `was killed by signal ${result.signal}`
        : `failed with exit code ${result.exitCode}`;
    const fix =
      result.exitCode === 255
        ? `\nFix: check that \`ssh${this.spec.port === undefined ? "" : ` -p ${this.spec.port}`} ${this.spec.target} true\` logs in (address, port, key, known host key).`
        : "";
    const lines = tail === "" ? "" : `\nIts last lines of output:\n${tail.replace(/^/gm, "  ")}`;
    return new ProcessError(`${what} ${how}.${lines}${fix}`, result.argv, result.exitCode, result.signal, tail);
  }
}
