// A machine keel deploys to, seen over SSH: which generation it runs, which
// it has, the boot entries on its ESP, and the few operations a deploy is
// made of. Each operation leaves the machine bootable into what it ran
// before: a generation's tree is copied under a temporary name and renamed
// when complete; kernel and initrd are written before the entry that names
// them; every file on the ESP is written under a temporary name and renamed
// (see ARCHITECTURE.md, "Deploying").
import { createReadStream } from "node:fs";
import { createHash } from "node:crypto";
import { stat } from "node:fs/promises";
import { Readable } from "node:stream";
import { MachineError } from "../errors.js";
import { shellQuote } from "../host/exec.js";
import type { CopyResult, Remote } from "../host/ssh.js";
import { blessedEntry, defaultEntry, entryName, generationEspDir, parseEntryName, partitionTypes, trialEntry, type EntryFile, type GenerationMeta } from "../image/layout.js";

/** Where keel mounts the ESP when the machine does not (its config mounts it nowhere). */
const espMountPoint = "/run/keel-deploy/esp";

export interface TargetState {
  readonly bootId: string;
  /** The generation the kernel command line booted (keel.generation=), or null. */
  readonly running: number | null;
  /** Whether this boot is a trial (keel.trial) that keel has not confirmed yet. */
  readonly trial: boolean;
  /** The UUID of the file system on /keel, which the boot entries find the root by. */
  readonly rootUuid: string;
  /** Bytes free on /keel and on the ESP. */
  readonly rootFree: number;
  readonly espFree: number;
  /** Where the ESP is mounted there. */
  readonly esp: string;
  /** Complete generations, in order. */
  readonly generations: readonly number[];
  /** Copies a deploy left unfinished (generations/.incoming-N). */
  readonly incoming: readonly number[];
  readonly entries: readonly EntryFile[];
  readonly meta: ReadonlyMap<number, GenerationMeta>;
}

const q = shellQuote;

/** The script that reports a machine's state as key=value lines (and mounts its ESP when nothing has). */
const stateScript = `
[ -d /keel/generations ] || { echo layout=none; exit 0; }
echo "boot_id=$(cat /proc/sys/kernel/random/boot_id)"
echo "cmdline=$(cat /proc/cmdline)"
[ -e /run/keel/confirmed ] && echo confirmed=yes
source=$(findmnt -no SOURCE /keel)
uuid=$(findmnt -no UUID /keel)
[ -n "$uuid" ] || uuid=$(blkid -s UUID -o value "$source")
echo "root_uuid=$uuid"
echo "root_free=$(df -B1 --output=avail /keel | tail -n 1)"
for g in /keel/generations/*; do [ -d "$g" ] && echo "generation=\${g##*/}"; done
for g in /keel/generations/.incoming-*; do [ -d "$g" ] && echo "incoming=\${g##*/.incoming-}"; done
esp=""
for m in /boot /efi /boot/efi ${espMountPoint}; do
  if mountpoint -q "$m" && [ -d "$m/loader/entries" ]; then esp=$m; break; fi
done
if [ -z "$esp" ]; then
  disk=$(lsblk -no PKNAME "$source" | head -n 1)
  part=$(lsblk -lnpo PATH,PARTTYPE "/dev/$disk" | awk 'tolower($2) == "${partitionTypes.esp.toLowerCase()}" { print $1; exit }')
  [ -n "$part" ] || { echo "error=no EFI system partition on /dev/$disk, the disk of /keel"; exit 0; }
  mkdir -p ${espMountPoint} && mount "$part" ${espMountPoint} || { echo "error=cannot mount the EFI system partition $part"; exit 0; }
  esp=${espMountPoint}
fi
echo "esp=$esp"
echo "esp_free=$(df -B1 --output=avail "$esp" | tail -n 1)"
for e in "$esp"/loader/entries/keel-*.conf; do [ -f "$e" ] && echo "entry=\${e##*/}"; done
for m in /keel/meta/*.json; do [ -f "$m" ] && { n=\${m##*/}; echo "meta=\${n%.json} $(tr -d '\\n' < "$m")"; }; done
true
`;

/** Reads the machine's state; an error names what keel expected there and the fix. */
export async function readState(remote: Remote): Promise<TargetState> {
  const lines = (await remote.exec(["sh", "-c", stateScript], { timeout: 60_000 })).stdout.split("\n");
  const all = (key: string) => lines.filter((l) => l.startsWith(`${key}=`)).map((l) => l.slice(key.length + 1));
  const one = (key: string) => all(key)[0] ?? "";
  if (one("layout") === "none") {
    throw new MachineError(`keel deploy: ${remote.where} has no /keel/generations: it was not installed by keel.\nFix: install it first (\`keel install\`, or write \`keel image\` onto its disk), then deploy.`);
  }
  if (one("error") !== "") throw new MachineError(`keel deploy: on ${remote.where}: ${one("error")}.\nFix: a keel machine boots from an ESP on the disk of its root; check \`lsblk\` there.`);
  const cmdline = one("cmdline").split(/\s+/);
  const generation = cmdline.find((w) => w.startsWith("keel.generation="))?.slice("keel.generation=".length);
  const numbers = (key: string) => all(key).map(Number).filter(Number.isInteger).sort((a, b) => a - b);
  const meta = new Map<number, GenerationMeta>();
  for (const line of all("meta")) {
    const space = line.indexOf(" ");
    try {
      meta.set(Number(line.slice(0, space)), JSON.parse(line.slice(space + 1)) as GenerationMeta);
    } catch {
      // A meta file cut short (the machine lost power as keel wrote it) says nothing; the generation is still listed.
    }
  }
  return {
    bootId: one("boot_id"),
    running: generation === undefined ? null : Number(generation),
    trial: cmdline.includes("keel.trial") && one("confirmed") !== "yes",
    rootUuid: one("root_uuid"),
    rootFree: Number(one("root_free")),
    espFree: Number(one("esp_free")),
    esp: one("esp"),
    generations: numbers("generation"),
    incoming: numbers("incoming"),
    entries: all("entry").flatMap((name) => parseEntryName(name) ?? []),
    meta,
  };
}

/** The number the next generation gets: above every generation and boot entry the machine has (an unfinished copy takes it over). */
export function nextGeneration(state: Pick<TargetState, "generations" | "entries">): number {
  return Math.max(0, ...state.generations, ...state.entries.map((e) => e.generation)) + 1;
}

const incomingDir = (generation: number) => `/keel/generations/.incoming-${generation}`;

/**
 * The generations a copy hard-links unchanged files from, in the order rsync
 * looks: the running one, then the others newest first, at most 20 (rsync's
 * limit). Deploying a system the machine had before costs no space.
 */
export function linkBases(state: Pick<TargetState, "running" | "generations">): number[] {
  const running = state.running !== null && state.generations.includes(state.running) ? [state.running] : [];
  const others = state.generations.filter((n) => n !== state.running).sort((a, b) => b - a);
  return [...running, ...others].slice(0, 20);
}

/**
 * Copies `tree` to the machine as generation `number`: rsync into
 * generations/.incoming-<number>, files a generation there has unchanged
 * hard-linked from it (linkBases; only changed files travel), then renamed
 * into place. An unfinished copy another deploy left is renamed to this
 * number first and completed.
 */
export async function sendGeneration(
  remote: Remote,
  state: TargetState,
  tree: string,
  number: number,
  options: { readonly within: readonly string[]; readonly onProgress: (bytes: number) => void },
): Promise<CopyResult> {
  const incoming = incomingDir(number);
  const leftover = state.incoming.find((n) => n !== number);
  if (leftover !== undefined) await remote.exec(["mv", "-T", incomingDir(leftover), incoming]);
  const flags = ["--hard-links", "--numeric-ids", ...linkBases(state).map((n) => `--link-dest=/keel/generations/${n}`)];
  const result = await remote.copyTo([`${tree}/`], `${incoming}/`, { delete: true, flags, within: options.within, onProgress: options.onProgress, timeout: 3_600_000 });
  await remote.exec(["sh", "-c", `set -e\nsync -f ${q(incoming)}\nmv -T ${q(incoming)} /keel/generations/${number}\nsync -f /keel/generations`]);
  return result;
}

/**
 * The generations `keel gc --target --keep N` removes: all but the N newest,
 * never the running one nor the one that boots by default. A generation
 * counts whether its tree or only its boot entry is left.
 */
export function generationsToRemove(state: Pick<TargetState, "running" | "generations" | "entries">, keep: number): number[] {
  const all = [...new Set([...state.generations, ...state.entries.map((e) => e.generation)])].sort((a, b) => b - a);
  const kept = new Set([...all.slice(0, keep), state.running, defaultEntry(state.entries)?.generation]);
  return all.filter((g) => !kept.has(g)).sort((a, b) => a - b);
}

/**
 * Removes generations from the machine, the ESP first (the entry, so that
 * nothing boots what is going, then its kernel and initrd), then their trees
 * and metadata, and the copies deploys left unfinished.
 */
export async function removeGenerations(remote: Remote, state: TargetState, numbers: readonly number[]): Promise<void> {
  const gone = new Set(numbers);
  const entries = state.entries.filter((e) => gone.has(e.generation)).map((e) => `${state.esp}/loader/entries/${e.name}`);
  const esp = numbers.map((n) => `${state.esp}/${generationEspDir(n)}`);
  const trees = [...numbers.flatMap((n) => [`/keel/generations/${n}`, `/keel/meta/${n}.json`]), ...state.incoming.map(incomingDir)];
  const script = [
    "set -e",
    ...(entries.length === 0 ? [] : [`rm -f ${entries.map(q).join(" ")}`, `sync -f ${q(`${state.esp}/loader/entries`)}`]),
    ...(esp.length === 0 ? [] : [`rm -rf ${esp.map(q).join(" ")}`, `sync -f ${q(state.esp)}`]),
    ...(trees.length === 0 ? [] : [`rm -rf --one-file-system ${trees.map(q).join(" ")}`, "sync -f /keel"]),
  ];
  await remote.exec(["sh", "-c", script.join("\n")], { timeout: 600_000 });
}

/** Writes meta/<number>.json there (renamed into place). */
export async function writeMeta(remote: Remote, number: number, meta: GenerationMeta): Promise<void> {
  const file = `/keel/meta/${number}.json`;
  await remote.pipeTo(["sh", "-c", `set -e\nmkdir -p /keel/meta\ncat > ${q(`${file}.tmp`)}\nmv ${q(`${file}.tmp`)} ${q(file)}`], Readable.from([`${JSON.stringify(meta)}\n`]));
}

/** Writes `source` (a local file, or text) to `file` on the ESP under a temporary name, then renames it; returns its sha256. */
async function writeEspFile(remote: Remote, esp: string, file: string, source: { readonly path: string } | { readonly text: string }): Promise<string> {
  const destination = `${esp}/${file}`;
  const temporary = `${destination.slice(0, destination.lastIndexOf("/"))}/.keel-${process.pid}.tmp`;
  const script = `set -e\nmkdir -p ${q(destination.slice(0, destination.lastIndexOf("/")))}\ncat > ${q(temporary)}\nsync -f ${q(temporary)}\nmv ${q(temporary)} ${q(destination)}`;
  if ("text" in source) {
    await remote.pipeTo(["sh", "-c", script], Readable.from([source.text]));
    return createHash("sha256").update(source.text).digest("hex");
  }
  await remote.pipeTo(["sh", "-c", script], createReadStream(source.path));
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(source.path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** The ESP space generation `number`'s kernel and initrd need, with a MiB for FAT's clusters and the entry. */
export async function espBytesNeeded(files: { readonly kernel: string; readonly initrd: string }): Promise<number> {
  return (await stat(files.kernel)).size + (await stat(files.initrd)).size + 1024 * 1024;
}

/** Puts generation `number`'s kernel and initrd on the ESP and checks that they read back as written. */
export async function writeBootFiles(remote: Remote, state: TargetState, number: number, files: { readonly kernel: string; readonly initrd: string }): Promise<void> {
  const dir = generationEspDir(number);
  const sums = {
    [`${dir}/vmlinuz`]: await writeEspFile(remote, state.esp, `${dir}/vmlinuz`, { path: files.kernel }),
    [`${dir}/initrd.img`]: await writeEspFile(remote, state.esp, `${dir}/initrd.img`, { path: files.initrd }),
  };
  const read = (await remote.exec(["sh", "-c", `cd ${q(state.esp)} && sha256sum ${Object.keys(sums).map(q).join(" ")}`])).stdout;
  for (const [file, sum] of Object.entries(sums)) {
    if (!read.includes(`${sum}  ${file}`)) throw new MachineError(`keel deploy: ${file} on the ESP of ${remote.where} does not read back as keel wrote it; the boot entries were not changed.\nFix: check the disk there (dmesg), then deploy again.`);
  }
}

/** Writes a boot entry as `name` (loader/entries/), removing the generation's other entry files: the last step that changes what boots. */
export async function writeEntry(remote: Remote, state: TargetState, generation: number, name: string, text: string): Promise<void> {
  await writeEspFile(remote, state.esp, `loader/entries/${name}`, { text });
  const others = state.entries.filter((e) => e.generation === generation && e.name !== name).map((e) => `${state.esp}/loader/entries/${e.name}`);
  if (others.length > 0) await remote.exec(["rm", "-f", ...others]);
  await remote.exec(["sync", "-f", `${state.esp}/loader/entries`]);
}

/** The text of generation N's entry file there. */
export async function readEntry(remote: Remote, state: TargetState, generation: number): Promise<string> {
  const entry = state.entries.find((e) => e.generation === generation);
  if (entry === undefined) throw new MachineError(`keel: generation ${generation} has no boot entry on ${remote.where}.\nFix: see \`keel generations\` for the generations it can boot.`);
  return (await remote.exec(["cat", `${state.esp}/loader/entries/${entry.name}`])).stdout;
}

/** Renames generation N's entry file (whatever its count) to `name`; nothing when it has none. */
export async function renameEntry(remote: Remote, state: TargetState, generation: number, name: string): Promise<void> {
  const entry = state.entries.find((e) => e.generation === generation);
  if (entry === undefined || entry.name === name) return;
  const dir = `${state.esp}/loader/entries`;
  await remote.exec(["sh", "-c", `set -e\nmv ${q(`${dir}/${entry.name}`)} ${q(`${dir}/${name}`)}\nsync -f ${q(dir)}`]);
}

/** Blesses generation N's entry: uncounted and without the trial's words, it boots by default from now on (the highest good entry). */
export async function bless(remote: Remote, state: TargetState, generation: number): Promise<void> {
  await writeEntry(remote, state, generation, entryName(generation), blessedEntry(await readEntry(remote, state, generation)));
}

/** Puts generation N's entry on trial: one try, keel.trial on its command line. */
export async function putOnTrial(remote: Remote, state: TargetState, generation: number): Promise<void> {
  await writeEntry(remote, state, generation, entryName(generation, 1), trialEntry(await readEntry(remote, state, generation)));
}

/** Tells the trial's timer that keel confirmed this boot. */
export async function confirmTrial(remote: Remote): Promise<void> {
  await remote.exec(["sh", "-c", "mkdir -p /run/keel && touch /run/keel/confirmed && systemctl stop keel-trial.service"]);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Reboots the machine (in the background, so that the session ends first)
 * and waits for a new boot to answer a new SSH connection; undefined when
 * none answers within `seconds`.
 */
export async function rebootAndWait(remote: Remote, bootId: string, seconds: number, onWait: (elapsed: number) => void): Promise<TargetState | undefined> {
  await remote.exec(["sh", "-c", "(sleep 1; systemctl reboot) >/dev/null 2>&1 </dev/null &"]);
  await remote.disconnect();
  return waitForBoot(remote, bootId, seconds, onWait);
}

/** Waits for a boot other than `bootId` to answer; undefined after `seconds`. */
export async function waitForBoot(remote: Remote, bootId: string, seconds: number, onWait: (elapsed: number) => void): Promise<TargetState | undefined> {
  const started = performance.now();
  const elapsed = () => (performance.now() - started) / 1000;
  let said = 0;
  while (elapsed() < seconds) {
    const answer = await remote.exec(["cat", "/proc/sys/kernel/random/boot_id"], { nothrow: true, timeout: 20_000 });
    if (answer.exitCode === 0 && answer.stdout.trim() !== bootId) return readState(remote);
    if (answer.exitCode !== 0) await remote.disconnect();
    if (elapsed() - said >= 30) {
      said = elapsed();
      onWait(said);
    }
    await sleep(3000);
  }
  return undefined;
}

export interface CheckResult {
  readonly name: string;
  readonly ok: boolean;
  readonly output: string;
}

/** A check's shell script, retried every 2 s until it passes or `timeout` seconds pass. */
function retried(body: string, timeout: number): string {
  return `end=$(( $(date +%s) + ${timeout} ))\nuntil out=$(${body} 2>&1); do\n  if [ "$(date +%s)" -ge "$end" ]; then printf '%s\\n' "$out"; exit 1; fi\n  sleep 2\ndone\nprintf '%s\\n' "$out"`;
}

export interface HealthSpec {
  readonly essentialUnits: readonly string[];
  readonly checks: Readonly<Record<string, { readonly command: string | null; readonly http: string | null; readonly tcp: number | null; readonly timeout: number }>>;
  /** Seconds the boot may take to finish starting its units. */
  readonly bootTimeout: number;
}

/** The trial boot's health, check by check, in the order keel reports them; the first failure ends it. */
export async function healthChecks(remote: Remote, spec: HealthSpec): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  const run = async (name: string, script: string, timeout: number): Promise<boolean> => {
    const result = await remote.exec(["sh", "-c", script], { nothrow: true, timeout: (timeout + 30) * 1000 });
    const ok = result.exitCode === 0;
    results.push({ name, ok, output: `${result.stdout}${result.stderr}`.trim() });
    return ok;
  };
  const state = `state=$(timeout ${spec.bootTimeout} systemctl is-system-running --wait)\necho "$state"\nsystemctl list-units --state=failed --no-legend --plain | sed 's/^/failed: /'\n[ "$state" = running ] || [ "$state" = degraded ]`;
  if (!(await run("the system reached its target", state, spec.bootTimeout))) return results;
  for (const unit of spec.essentialUnits) {
    if (!(await run(`${unit} is active`, `systemctl is-active ${q(unit)} || { systemctl status --no-pager -n 20 ${q(unit)}; exit 1; }`, 10))) return results;
  }
  for (const [name, check] of Object.entries(spec.checks)) {
    const body =
      check.command !== null
        ? `sh -c ${q(check.command)}`
        : check.http !== null
          ? `curl -fsS -o /dev/null -w '%{http_code}' --max-time 10 ${q(check.http)}`
          : `timeout 5 bash -c ${q(`exec 3<>/dev/tcp/127.0.0.1/${check.tcp ?? 0}`)}`;
    if (!(await run(`deploy.healthChecks.${name}`, retried(body, check.timeout), check.timeout))) return results;
  }
  return results;
}
