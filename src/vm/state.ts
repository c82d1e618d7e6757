// Where keel keeps what a VM owns outside the store: per project an SSH key,
// per system its writable disk, pinned host key, console log and sockets.
//   $XDG_STATE_HOME/keel/projects/<id>/project.json       { file }
//   $XDG_STATE_HOME/keel/projects/<id>/ssh/id_ed25519     the project's key (0600)
//   $XDG_STATE_HOME/keel/projects/<id>/vms/<system>/      disk.qcow2 (the state, direct boot) known_hosts console.log
//                                                          uefi-disk.qcow2 efivars.fd (--firmware uefi: the whole disk, the EFI variables)
//                                                          console.sock qmp.sock qemu.pid vm.json
//                                                          system, image, uefi-disk-image: links to the store, roots for keel gc
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { chmod, copyFile, mkdir, rename, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { ConfigError } from "../errors.js";
import { exec } from "../host/exec.js";
import { Remote } from "../host/ssh.js";

export function stateDir(env: NodeJS.ProcessEnv): string {
  return path.join(env.XDG_STATE_HOME || path.join(env.HOME || os.homedir(), ".local/state"), "keel");
}

export interface VmPaths {
  readonly system: string;
  readonly projectFile: string;
  readonly key: string;
  readonly dir: string;
  readonly disk: string;
  readonly uefiDisk: string;
  readonly efiVars: string;
  /** The store's disk image that uefiDisk was made from (its backing file), kept by keel gc. */
  readonly uefiDiskImage: string;
  readonly knownHosts: string;
  readonly consoleLog: string;
  readonly consoleSocket: string;
  readonly qmp: string;
  readonly pidFile: string;
  readonly info: string;
  readonly qemuLog: string;
}

/** What `keel run` records about a running VM, for `keel vm`, `keel ssh` and `keel vm stop`. */
export interface VmInfo {
  readonly system: string;
  readonly project: string;
  readonly pid: number;
  readonly started: string;
  readonly accel: string;
  /** Host address and port that reach the guest's sshd, if one is forwarded. */
  readonly ssh: { readonly address: string; readonly port: number } | null;
  readonly helpers: readonly number[];
}

/** A unix socket's path must fit in sockaddr_un. */
const maxSocketPath = 107;

export function vmPaths(env: NodeJS.ProcessEnv, projectFile: string, system: string): VmPaths {
  const id = createHash("sha256").update(projectFile).digest("hex").slice(0, 12);
  const project = path.join(stateDir(env), "projects", id);
  const dir = path.join(project, "vms", system);
  const paths = {
    system,
    projectFile,
    key: path.join(project, "ssh", "id_ed25519"),
    dir,
    disk: path.join(dir, "disk.qcow2"),
    uefiDisk: path.join(dir, "uefi-disk.qcow2"),
    efiVars: path.join(dir, "efivars.fd"),
    uefiDiskImage: path.join(dir, "uefi-disk-image"),
    knownHosts: path.join(dir, "known_hosts"),
    consoleLog: path.join(dir, "console.log"),
    consoleSocket: path.join(dir, "console.sock"),
    qmp: path.join(dir, "qmp.sock"),
    pidFile: path.join(dir, "qemu.pid"),
    info: path.join(dir, "vm.json"),
    qemuLog: path.join(dir, "qemu.log"),
  };
  if (paths.consoleSocket.length > maxSocketPath) {
    throw new ConfigError(
      `The VM state directory ${dir} is too deep for its sockets (${paths.consoleSocket.length} > ${maxSocketPath} bytes).\n` +
        "Fix: set XDG_STATE_HOME to a shorter directory.",
    );
  }
  return paths;
}

/** The project's public key, if `keel run` has made it. */
export function projectPublicKey(paths: VmPaths): string | null {
  return existsSync(`${paths.key}.pub`) ? readFileSync(`${paths.key}.pub`, "utf8").trim() : null;
}

/** The project's SSH key pair, made once; returns the public key. */
export async function ensureProjectKey(paths: VmPaths): Promise<string> {
  if (!existsSync(paths.key)) {
    await mkdir(path.dirname(paths.key), { recursive: true, mode: 0o700 });
    await writeFile(path.join(path.dirname(path.dirname(paths.key)), "project.json"), `${JSON.stringify({ file: paths.projectFile })}\n`);
    await exec(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", `keel@${path.basename(path.dirname(paths.projectFile))}`, "-f", paths.key]);
    await chmod(paths.key, 0o600);
  }
  return readFileSync(`${paths.key}.pub`, "utf8").trim();
}

/**
 * The VM's state disk for a direct boot: an empty ext4 file system in a qcow2
 * file, where stage 1 keeps the machine's state and the writable layer over
 * the image. `reset` starts from an empty one, and forgets the guest's host
 * key with it (the keys live on that disk).
 */
export async function ensureDisk(paths: VmPaths, sizeMiB: number, reset: boolean): Promise<void> {
  await mkdir(paths.dir, { recursive: true, mode: 0o700 });
  if (reset) await Promise.all([rm(paths.disk, { force: true }), rm(paths.knownHosts, { force: true })]);
  if (existsSync(paths.disk)) return;
  const raw = `${paths.disk}.raw`;
  try {
    await exec(["mke2fs", "-q", "-F", "-t", "ext4", "-L", "keel-state", raw, `${sizeMiB}M`]);
    await exec(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", raw, `${paths.disk}.tmp`]);
    await rename(`${paths.disk}.tmp`, paths.disk);
  } finally {
    await rm(raw, { force: true });
    await rm(`${paths.disk}.tmp`, { force: true });
  }
}

/** The file of the VM's blank extra disk number `i`. */
export const emptyDiskFile = (paths: VmPaths, i: number): string => path.join(paths.dir, `empty-${i}.qcow2`);

/** The VM's blank extra disks (virtualisation.emptyDiskImages), made once at their sizes; `reset` makes them blank again. */
export async function ensureEmptyDisks(paths: VmPaths, sizesMiB: readonly number[], reset: boolean): Promise<string[]> {
  const files = sizesMiB.map((_, i) => emptyDiskFile(paths, i));
  for (const [i, file] of files.entries()) {
    if (reset) await rm(file, { force: true });
    if (existsSync(file)) continue;
    await exec(["qemu-img", "create", "-q", "-f", "qcow2", `${file}.tmp`, `${sizesMiB[i]}M`]);
    await rename(`${file}.tmp`, file);
  }
  return files;
}

/**
 * The VM's whole disk for a UEFI boot, as a machine's disk: made once from
 * the system's disk image (`image`, the qcow2's backing file in the store)
 * at `sizeMiB`, with a fresh copy of OVMF's EFI variables; afterwards it is
 * the machine's, and a rebuilt system does not replace it (`reset` does).
 * Returns the image it was made from (its backing file).
 */
export async function ensureUefiDisk(paths: VmPaths, image: { readonly file: string; readonly bytes: number }, sizeMiB: number, reset: boolean, varsTemplate: string): Promise<string> {
  await mkdir(paths.dir, { recursive: true, mode: 0o700 });
  if (reset) await Promise.all([paths.uefiDisk, paths.efiVars, paths.knownHosts].map((file) => rm(file, { force: true })));
  if (!existsSync(paths.efiVars)) {
    await copyFile(varsTemplate, `${paths.efiVars}.tmp`);
    await rename(`${paths.efiVars}.tmp`, paths.efiVars);
  }
  if (existsSync(paths.uefiDisk)) {
    const info = JSON.parse((await exec(["qemu-img", "info", "--output=json", "-U", paths.uefiDisk])).stdout) as { "backing-filename"?: string };
    return info["backing-filename"] ?? image.file;
  }
  if (sizeMiB * 1024 * 1024 < image.bytes) {
    throw new ConfigError(
      `virtualisation.diskSize is ${sizeMiB} MiB, smaller than the system's disk image (${Math.ceil(image.bytes / 1024 / 1024)} MiB).
` +
        `Fix: set virtualisation.diskSize to at least ${Math.ceil(image.bytes / 1024 / 1024)}.`,
    );
  }
  try {
    await exec(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", image.file, `${paths.uefiDisk}.tmp`, `${sizeMiB}M`]);
    await rename(`${paths.uefiDisk}.tmp`, paths.uefiDisk);
  } finally {
    await rm(`${paths.uefiDisk}.tmp`, { force: true });
  }
  return image.file;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
  // A reused pid is not our VM.
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("qemu-system");
  } catch {
    return false;
  }
}

/** The record in a vm.json if its VM is running (a record left by a VM that died is ignored). */
function aliveRecord(file: string): VmInfo | undefined {
  if (!existsSync(file)) return undefined;
  const info = JSON.parse(readFileSync(file, "utf8")) as VmInfo;
  return isAlive(info.pid) ? info : undefined;
}

/** The VM's record if it is running. */
export function runningVm(paths: VmPaths): VmInfo | undefined {
  return aliveRecord(paths.info);
}

/** Every VM keel started that is still running, across projects. */
export function listVms(env: NodeJS.ProcessEnv): (VmInfo & { readonly dir: string })[] {
  const projects = path.join(stateDir(env), "projects");
  const found: (VmInfo & { dir: string })[] = [];
  for (const project of existsSync(projects) ? readdirSync(projects) : []) {
    const vms = path.join(projects, project, "vms");
    for (const system of existsSync(vms) ? readdirSync(vms) : []) {
      const vm = aliveRecord(path.join(vms, system, "vm.json"));
      if (vm !== undefined) found.push({ ...vm, dir: path.join(vms, system) });
    }
  }
  return found;
}

/** The VM's console log so far, without terminal colours; "" before it printed anything. */
export function consoleText(paths: VmPaths): string {
  let text: string;
  try {
    text = readFileSync(paths.consoleLog, "utf8");
  } catch {
    return "";
  }
  // eslint-disable-next-line no-control-regex
  return text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "").replace(/\r/g, "");
}

/** The last lines of the VM's console log, without terminal colours. */
export function consoleTail(paths: VmPaths, lines = 30): string {
  const text = consoleText(paths).trimEnd();
  return text === "" ? "(the console printed nothing)" : text.split("\n").slice(-lines).join("\n");
}

/**
 * The guest's root over the forwarded port, with the project's key; the
 * guest's host key is pinned in the VM's own known_hosts. No prompts: that
 * key is the only way in. LogLevel=ERROR keeps "Permanently added" quiet.
 */
export function vmRemote(paths: VmPaths, address: string, port: number, env?: NodeJS.ProcessEnv): Remote {
  return new Remote({
    target: `root@${address}`,
    port,
    identity: paths.key,
    knownHosts: { file: paths.knownHosts, alias: `keel-vm-${paths.system}` },
    options: ["-o", "BatchMode=yes", "-o", "LogLevel=ERROR"],
    connectTimeout: 10,
    env,
  });
}
