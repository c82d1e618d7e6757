import { mkdir, readFile } from "node:fs/promises";
import path from "node:path";
import type { DiskDescription } from "../steps/disk.js";
import type { BootDescription } from "../steps/system.js";
import { cacheDir } from "../config/load.js";
import type { ResolvedSystem } from "../config/project.js";
import { UsageError } from "../errors.js";
import { showCommand } from "../host/exec.js";
import { chooseAccelerator } from "../host/kvm.js";
import { defaultWaitSeconds, startDetached, runOnTerminal, waitForSsh } from "../vm/machine.js";
import { ovmf, parseForward, qemuArgv, type Accelerator, type ForwardedPort, type VmBoot } from "../vm/qemu.js";
import { startVirtiofsd } from "../vm/virtiofs.js";
import { emptyDiskFile, ensureDisk, ensureEmptyDisks, ensureProjectKey, ensureUefiDisk, runningVm, vmPaths, type VmInfo } from "../vm/state.js";
import { subPlan } from "../plan/plan.js";
import { defineCommand, secondsOption, systemArgument } from "./command.js";
import { planFor, realizeShowingProgress, stepOf, storeOption } from "./planning.js";

/** Where the host reaches the guest's sshd: the first TCP forward from a host port to a port sshd listens on. */
export function sshForward(config: ResolvedSystem, extra: readonly ForwardedPort[] = []): VmInfo["ssh"] {
  const ports = config.services.openssh.enable ? config.services.openssh.ports : [22];
  const forward = [...config.virtualisation.forwardPorts, ...extra].find((p) => p.from === "host" && p.proto === "tcp" && ports.includes(p.guest.port));
  if (forward === undefined) return null;
  const address = forward.host.address === "" || forward.host.address === "0.0.0.0" ? "127.0.0.1" : forward.host.address === "::" ? "::1" : forward.host.address;
  return { address, port: forward.host.port };
}

/** The forwards `--forward` gives. */
function forwardsOption(texts: readonly string[]): ForwardedPort[] {
  return texts.map((text) => {
    const forward = parseForward(text);
    if (forward === undefined) {
      throw new UsageError(`keel run: --forward ${text} is not a forward.\nFix: write HOSTPORT:GUESTPORT (e.g. --forward 8022:22), or IPV4ADDRESS:HOSTPORT:GUESTPORT to listen elsewhere than 127.0.0.1.`);
    }
    return forward;
  });
}

export const runCommand = defineCommand({
  name: "run",
  summary: "boot a system in QEMU (building what is missing)",
  description:
    "Builds the system and boots it in QEMU. By default the kernel and initrd are loaded from the store and the\n" +
    "system's generation (an image in the store) is /dev/vda, read-only; the VM's own disk (a qcow2 file in keel's\n" +
    "state directory) holds the machine's state: /var, /home, /root, /srv, its SSH host key and machine-id survive\n" +
    "restarts and rebuilds until --reset; what the guest writes elsewhere (/etc) is gone once a rebuilt system boots.\n" +
    "With --firmware uefi the VM boots like hardware: OVMF starts systemd-boot from a disk made from the system's\n" +
    "disk image (`keel image`), attached as virtualisation.diskInterface says; that disk is then the VM's own.\n" +
    "virtualisation.* says memory, cores, forwarded ports (127.0.0.1 unless an address is given) and shares.\n" +
    "KVM is used when a real probe shows it works, else TCG (software emulation), with a notice.\n\n" +
    "On the terminal the serial console is attached: Ctrl-A X quits QEMU, Ctrl-A C toggles its monitor.\n" +
    "With --detach QEMU runs in the background; `keel vm console|stop|list` manage it, `keel ssh` logs in.",
  positionals: [systemArgument],
  options: {
    detach: { type: "boolean", description: "Run in the background (console on a socket, QMP for `keel vm stop`)." },
    "wait-ssh": { type: "boolean", description: "With --detach: return once root can log in over SSH (keel ssh works)." },
    timeout: { type: "string", value: "seconds", description: `How long --wait-ssh waits (default ${defaultWaitSeconds}).` },
    reset: { type: "boolean", description: "Start from an empty VM disk: what the guest wrote before is deleted." },
    ephemeral: { type: "boolean", description: "Throw away everything the guest writes when it stops." },
    firmware: { type: "string", value: "direct|uefi", description: "direct (default): load the kernel from the store; uefi: boot the disk image through OVMF." },
    forward: { type: "string", multiple: true, value: "[addr:]host:guest", description: "Forward a host TCP port to the guest, besides the system's forwards (127.0.0.1 unless addr is given)." },
    accel: { type: "string", value: "kvm|tcg", description: "Use this accelerator instead of probing KVM." },
    "dry-run": { type: "boolean", description: "Build what is missing, print the QEMU command line, boot nothing." },
    store: storeOption,
  },
  examples: [
    ["keel run qemu", "Boot the VM guest with its console on this terminal (Ctrl-A X quits)."],
    ["keel run qemu --detach --wait-ssh", "Boot it in the background; return when `ssh -p 2222 localhost` works."],
    ["keel run qemu --reset", "Boot from a fresh disk, forgetting what the guest wrote."],
    ["keel run aethelred --firmware uefi --forward 8022:22 --detach --wait-ssh", "A VM standing in for the office machine: its disk image under OVMF, SSH on port 8022."],
    ["keel run qemu --dry-run", "Show the QEMU command keel would run."],
  ],
  async run(context, { values, positionals }) {
    const system = positionals[0] ?? "";
    const accel = values.accel;
    if (accel !== undefined && accel !== "kvm" && accel !== "tcg") throw new UsageError(`keel run: --accel ${accel} is not an accelerator keel knows.\nFix: use --accel kvm or --accel tcg.`);
    const firmware = values.firmware ?? "direct";
    if (firmware !== "direct" && firmware !== "uefi") throw new UsageError(`keel run: --firmware ${firmware} is not a way keel boots.\nFix: use --firmware direct (the default) or --firmware uefi.`);
    if (values["wait-ssh"] && !values.detach) throw new UsageError("keel run: --wait-ssh needs --detach (without it the console has the terminal).\nFix: run `keel run " + system + " --detach --wait-ssh`.");
    if (values.reset && values.ephemeral) throw new UsageError("keel run: --reset and --ephemeral exclude each other.\nFix: give one of them.");
    const timeout = secondsOption(values.timeout, "keel run", "timeout", defaultWaitSeconds);
    const extraForwards = forwardsOption(values.forward ?? []);
    const project = await context.project();
    const paths = vmPaths(context.env, project.file, system);
    const running = runningVm(paths);
    if (running !== undefined) {
      throw new UsageError(`The VM \`${system}' is already running (pid ${running.pid}).\nFix: log in with \`keel ssh ${system}\`, or stop it first with \`keel vm stop ${system}\`.`);
    }
    const sshPublicKey = await ensureProjectKey(paths);
    const whole = await planFor(context, system, values.store, { vm: { sshKey: sshPublicKey } });
    const config = whole.evaluated.config;
    const bootStep = stepOf(whole.plan, firmware === "uefi" ? "disk" : "image");
    const planned = { ...whole, plan: subPlan(whole.plan, whole.plan.top, bootStep) };
    const realized = await realizeShowingProgress(context, planned, false);
    if ("exitCode" in realized) return realized.exitCode;
    const stepDir = planned.store.pathOf(bootStep.hash, bootStep.name);
    // What the VM boots stays in the store while its state directory names it (keel gc keeps roots).
    await mkdir(paths.dir, { recursive: true, mode: 0o700 });
    await planned.store.addRoot(path.join(paths.dir, "system"), realized.path);
    const dryRun = values["dry-run"] === true;
    const description = JSON.parse(await readFile(path.join(realized.path, "boot.json"), "utf8")) as BootDescription;
    let boot: VmBoot;
    if (firmware === "direct") {
      await planned.store.addRoot(path.join(paths.dir, "image"), stepDir);
      boot = { kind: "direct", boot: description, generation: bootStep.hash, image: path.join(stepDir, "rootfs.img"), stateDisk: paths.disk };
      if (!dryRun) await ensureDisk(paths, config.virtualisation.diskSize, values.reset === true);
    } else {
      const disk = JSON.parse(await readFile(path.join(stepDir, "disk.json"), "utf8")) as DiskDescription;
      const image = path.join(stepDir, "disk.img");
      if (!dryRun) {
        const madeFrom = await ensureUefiDisk(paths, { file: image, bytes: disk.bytes }, config.virtualisation.diskSize, values.reset === true, ovmf.vars);
        await planned.store.addRoot(paths.uefiDiskImage, path.dirname(madeFrom));
        if (madeFrom !== image) {
          context.out.stderr(`keel: the VM's disk was made from an earlier build of \`${system}' and is the machine's own now; \`keel run ${system} --firmware uefi --reset' makes it again from this one.\n`);
        }
      }
      boot = { kind: "uefi", disk: paths.uefiDisk, efiVars: paths.efiVars };
    }
    // Rooted now: keel gc need not wait for as long as the VM runs.
    await planned.store.close();

    let chosen: Accelerator = accel ?? "kvm";
    if (accel === undefined) {
      const choice = await chooseAccelerator(description.kernel, path.join(cacheDir(context.env), "kvm-probe.json"));
      chosen = choice.accel;
      if (choice.notice !== undefined) context.out.stderr(`${choice.notice}\n`);
    }
    const emptyDisks = dryRun
      ? config.virtualisation.emptyDiskImages.map((_, i) => emptyDiskFile(paths, i))
      : await ensureEmptyDisks(paths, config.virtualisation.emptyDiskImages.map((d) => d.size), values.reset === true);
    const virtiofsShares = Object.entries(config.virtualisation.sharedDirectories).filter(([, s]) => s.mechanism === "virtiofs");
    const virtiofsSockets = Object.fromEntries(virtiofsShares.map(([tag]) => [tag, path.join(paths.dir, `virtiofs-${tag}.sock`)]));
    const argv = qemuArgv({
      system,
      boot,
      virtualisation: config.virtualisation,
      accel: chosen,
      ephemeral: values.ephemeral === true,
      extraForwards,
      files: {
        qmp: paths.qmp,
        consoleLog: paths.consoleLog,
        pidFile: paths.pidFile,
        console: values.detach ? { kind: "socket", path: paths.consoleSocket } : { kind: "terminal" },
        virtiofsSockets,
        emptyDisks,
      },
    });
    if (dryRun) {
      context.out.stdout(`${showCommand(argv)}\n`);
      return 0;
    }
    const helpers = virtiofsShares.map(([tag, share]) => startVirtiofsd(share, virtiofsSockets[tag] ?? "", `virtualisation.sharedDirectories."${tag}"`));
    const info = { system, project: project.file, started: new Date().toISOString(), accel: chosen, ssh: sshForward(config, extraForwards), helpers };
    if (!values.detach) {
      context.out.stderr(`keel: the console of \`${system}' follows. Ctrl-A X quits QEMU; Ctrl-A C toggles its monitor.\n`);
      return await runOnTerminal(argv, paths, info);
    }
    const vm = await startDetached(argv, paths, info);
    context.out.stderr(`keel: \`${system}' runs in the background (pid ${vm.pid}). Console: keel vm console ${system}; stop: keel vm stop ${system}.\n`);
    if (values["wait-ssh"]) {
      const ready = await waitForSsh(vm, paths, timeout);
      context.out.stderr(`keel: \`${system}' answers SSH on ${ready.address}:${ready.port} after ${ready.seconds.toFixed(1)} s; log in with \`keel ssh ${system}\`.\n`);
    }
    return 0;
  },
});
