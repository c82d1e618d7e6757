// Whether KVM really works: /dev/kvm can exist and still hang once a kernel
// starts, so the probe boots a real kernel and waits for its first words.
import { constants, readFileSync } from "node:fs";
import { access, mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { exec } from "./exec.js";

export type KvmProbe =
  | { readonly usable: true }
  | { readonly usable: false; readonly reason: string };

const kvmProbeTimeout = 10_000;

export async function probeKvm(kernel: string | undefined, timeout = kvmProbeTimeout): Promise<KvmProbe> {
  try {
    await access("/dev/kvm", constants.R_OK | constants.W_OK);
  } catch {
    return { usable: false, reason: "/dev/kvm is missing or not accessible" };
  }
  if (kernel === undefined) return { usable: false, reason: "not probed: no kernel built yet to boot (run keel build first)" };
  const result = await exec(
    ["qemu-system-x86_64", "-accel", "kvm", "-m", "256", "-nodefaults", "-display", "none", "-serial", "stdio", "-no-reboot",
      "-kernel", kernel, "-append", "console=ttyS0 panic=-1 earlyprintk=serial"],
    { nothrow: true, timeout, stopWhen: /Linux version/ },
  ).catch((error: Error) => ({ stdout: "", stderr: error.message, timedOut: false, exitCode: 1, stopped: false }));
  if (result.stopped) return { usable: true };
  return {
    usable: false,
    reason: result.timedOut
      ? `a kernel under KVM printed nothing in ${timeout / 1000} s`
      : `qemu with KVM failed: ${result.stderr.trim().split("\n").pop() ?? `exit code ${result.exitCode}`}`,
  };
}

/**
 * The probe's answer for this boot of the host: the first `keel run` after a
 * reboot probes, later ones read the answer (a hanging KVM costs the timeout).
 */
export async function probeKvmOnce(kernel: string, cacheFile: string): Promise<KvmProbe> {
  const bootId = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  try {
    const cached = JSON.parse(readFileSync(cacheFile, "utf8")) as { bootId: string; probe: KvmProbe };
    if (cached.bootId === bootId) return cached.probe;
  } catch {
    // Not probed yet on this boot.
  }
  const probe = await probeKvm(kernel);
  await mkdir(path.dirname(cacheFile), { recursive: true });
  await writeFile(cacheFile, `${JSON.stringify({ bootId, probe })}\n`);
  return probe;
}

/** The accelerator for a boot of `kernel`: KVM when the probe says it works, else TCG with the notice to show. */
export async function chooseAccelerator(kernel: string, cacheFile: string): Promise<{ readonly accel: "kvm" | "tcg"; readonly notice?: string }> {
  const probe = await probeKvmOnce(kernel, cacheFile);
  if (probe.usable) return { accel: "kvm" };
  return { accel: "tcg", notice: `keel: KVM is not usable (${probe.reason}); using TCG (software emulation), which is slower.` };
}
