// `keel doctor`, host half: are the programs keel runs here, can mmdebstrap
// build, is QEMU present, does KVM work; ccache's half is in ccache.ts. Each check says what is wrong and the
// fix; the Debian packages for all missing programs make one apt-get line.
import { existsSync } from "node:fs";
import { open } from "node:fs/promises";
import { Store } from "../store/store.js";
import { ccacheChecks } from "./ccache.js";
import { exec } from "./exec.js";
import { busyboxPath, hostMirror } from "./facts.js";
import { ovmf } from "../vm/qemu.js";
import { probeKvm } from "./kvm.js";

export interface Check {
  readonly name: string;
  /** `notice`: worth knowing, not a failure (KVM missing means slower VMs, not broken ones). */
  readonly status: "ok" | "fail" | "notice";
  readonly detail: string;
  /** Debian packages that fix it. */
  readonly packages?: readonly string[];
}

interface Program {
  readonly name: string;
  readonly argv: readonly string[];
  readonly packageName: string;
  readonly version: RegExp;
  /** Only needed when keel runs as an ordinary user (mmdebstrap's unshare mode). */
  readonly rootless?: boolean;
}

const programs: readonly Program[] = [
  { name: "mmdebstrap", argv: ["mmdebstrap", "--version"], packageName: "mmdebstrap", version: /mmdebstrap (\S+)/ },
  { name: "apt-get", argv: ["apt-get", "--version"], packageName: "apt", version: /apt (\S+)/ },
  { name: "dpkg-deb", argv: ["dpkg-deb", "--version"], packageName: "dpkg", version: /version (\S+)/ },
  { name: "depmod", argv: ["depmod", "--version"], packageName: "kmod", version: /kmod version (\S+)/ },
  { name: "qemu-system-x86_64", argv: ["qemu-system-x86_64", "--version"], packageName: "qemu-system-x86", version: /version (\S+)/ },
  { name: "qemu-img", argv: ["qemu-img", "--version"], packageName: "qemu-utils", version: /version (\S+)/ },
  { name: "mke2fs", argv: ["mke2fs", "-V"], packageName: "e2fsprogs", version: /mke2fs (\S+)/ },
  { name: "ssh", argv: ["ssh", "-V"], packageName: "openssh-client", version: /OpenSSH_(\S+?),/ },
  { name: "rsync", argv: ["rsync", "--version"], packageName: "rsync", version: /version (\S+)/ },
  { name: "gcc", argv: ["gcc", "--version"], packageName: "gcc", version: /\) (\S+)/ },
  { name: "make", argv: ["make", "--version"], packageName: "make", version: /Make (\S+)/ },
  { name: "bc", argv: ["bc", "--version"], packageName: "bc", version: /bc (\S+)/ },
  { name: "flex", argv: ["flex", "--version"], packageName: "flex", version: /flex (\S+)/ },
  { name: "bison", argv: ["bison", "--version"], packageName: "bison", version: /\) (\S+)/ },
  { name: "libelf headers", argv: ["sh", "-c", "test -e /usr/include/gelf.h && echo present"], packageName: "libelf-dev", version: /(\S+)/ },
  { name: "openssl headers", argv: ["sh", "-c", "test -e /usr/include/openssl/ssl.h && echo present"], packageName: "libssl-dev", version: /(\S+)/ },
  { name: "sfdisk", argv: ["sfdisk", "--version"], packageName: "fdisk", version: /util-linux (\S+)/ },
  { name: "mkfs.vfat", argv: ["sh", "-c", "command -v mkfs.vfat"], packageName: "dosfstools", version: /(\S+)/ },
  { name: "mcopy", argv: ["mcopy", "--version"], packageName: "mtools", version: /mcopy \(GNU mtools\) (\S+)/ },
  { name: "mksquashfs", argv: ["mksquashfs", "-version"], packageName: "squashfs-tools", version: /mksquashfs version (\S+)/ },
  { name: "xorriso", argv: ["xorriso", "-version"], packageName: "xorriso", version: /xorriso (\S+)/ },
  { name: "OVMF", argv: ["sh", "-c", `test -e ${ovmf.code} && echo present`], packageName: "ovmf", version: /(\S+)/ },
  { name: "newuidmap", argv: ["sh", "-c", "command -v newuidmap"], packageName: "uidmap", version: /(\S+)/, rootless: true },
];

async function checkProgram(program: Program): Promise<Check> {
  const result = await exec(program.argv, { nothrow: true }).catch(() => undefined);
  if (result === undefined || result.exitCode !== 0) {
    return { name: program.name, status: "fail", detail: `not found (Debian package ${program.packageName})`, packages: [program.packageName] };
  }
  const version = program.version.exec(result.stdout + result.stderr)?.[1] ?? "present";
  return { name: program.name, status: "ok", detail: version };
}

/** Whether an ELF file asks for a program interpreter (is dynamically linked). */
async function isDynamic(file: string): Promise<boolean> {
  const handle = await open(file, "r");
  try {
    const header = Buffer.alloc(64);
    await handle.read(header, 0, 64, 0);
    const phoff = Number(header.readBigUInt64LE(0x20));
    const phentsize = header.readUInt16LE(0x36);
    const phnum = header.readUInt16LE(0x38);
    const table = Buffer.alloc(phentsize * phnum);
    await handle.read(table, 0, table.length, phoff);
    for (let i = 0; i < phnum; i++) if (table.readUInt32LE(i * phentsize) === 3) return true;
    return false;
  } finally {
    await handle.close();
  }
}

async function checkBusybox(): Promise<Check> {
  const fix = { packages: ["busybox-static"] };
  if (!existsSync(busyboxPath)) return { name: "busybox", status: "fail", detail: `${busyboxPath} not found (Debian package busybox-static)`, ...fix };
  if (await isDynamic(busyboxPath)) {
    return { name: "busybox", status: "fail", detail: `${busyboxPath} is dynamically linked; the initrd needs the static one (busybox-static)`, ...fix };
  }
  return { name: "busybox", status: "ok", detail: `${busyboxPath}, static` };
}

async function checkMmdebstrap(mirror: string): Promise<Check> {
  const argv = ["mmdebstrap", "--simulate", "--mode=auto", "--variant=minbase", "bookworm", "/dev/null", mirror];
  const result = await exec(argv, { nothrow: true, timeout: 120_000 }).catch(() => undefined);
  if (result?.exitCode === 0) return { name: "mmdebstrap can build", status: "ok", detail: `simulated a bookworm build from ${mirror}` };
  const last = `${result?.stdout ?? ""}${result?.stderr ?? ""}`.trim().split("\n").filter((l) => l.startsWith("E:")).pop();
  return {
    name: "mmdebstrap can build",
    status: "fail",
    detail: `\`mmdebstrap --simulate\` failed${last ? `: ${last}` : ""}. Check that ${mirror} is reachable and, as an ordinary user, that /etc/subuid and /etc/subgid give you a range`,
  };
}

export async function runDoctor(store: string, env: NodeJS.ProcessEnv): Promise<Check[]> {
  const rootless = process.getuid?.() !== 0;
  const checks = await Promise.all(programs.filter((p) => rootless || !p.rootless).map(checkProgram));
  checks.push(await checkBusybox());
  checks.push(...(await ccacheChecks(env, store)));
  if (checks.find((c) => c.name === "mmdebstrap")?.status === "ok") checks.push(await checkMmdebstrap(hostMirror()));
  if (checks.find((c) => c.name === "qemu-system-x86_64")?.status === "ok") {
    const kvm = await probeKvm(await new Store(store).findFile("kernel-", "vmlinuz"));
    checks.push(
      kvm.usable
        ? { name: "kvm", status: "ok", detail: "a kernel boots under KVM" }
        : { name: "kvm", status: "notice", detail: `not usable: ${kvm.reason}; keel run uses TCG (software emulation) instead` },
    );
  }
  return checks;
}

export function missingPackages(checks: readonly Check[]): string[] {
  return [...new Set(checks.flatMap((c) => (c.status === "fail" ? (c.packages ?? []) : [])))];
}
