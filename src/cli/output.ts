// Showing a build: a live tree of steps on a terminal, one plain line per
// event otherwise, or the events themselves as JSON lines with --json.
import type { BuildEvent } from "../steps/realize.js";
import type { Output } from "./command.js";

export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/** Progress of a transfer as a line: "123.4 MiB of 240.0 MiB, 12.3 MiB/s". */
export function rate(bytes: number, total: number | null, started: number): string {
  const elapsed = Math.max((performance.now() - started) / 1000, 0.001);
  return `${formatBytes(bytes)}${total === null ? "" : ` of ${formatBytes(total)}`}, ${formatBytes(bytes / elapsed)}/s`;
}

const seconds = (s: number): string => `${s.toFixed(1)} s`;

export interface BuildReporter {
  event(event: BuildEvent): void;
  /** Stops redrawing; the last state stays on the screen. */
  close(): void;
}

export function buildReporter(out: Output, mode: "json" | "plain" | "live"): BuildReporter {
  if (mode === "json") return { event: (e) => out.stdout(`${JSON.stringify(e)}\n`), close: () => undefined };
  if (mode === "plain") return plainReporter(out);
  return liveReporter(out);
}

/** How often a plain log repeats a step's progress. */
const plainProgressEvery = 15_000;

function plainReporter(out: Output): BuildReporter {
  const progressShown = new Map<string, number>();
  return {
    event(e) {
      switch (e.type) {
        case "progress": {
          const now = performance.now();
          if (now - (progressShown.get(e.step) ?? 0) < plainProgressEvery) return;
          progressShown.set(e.step, now);
          out.stderr(`${e.step}: ${e.text}\n`);
          return;
        }
        case "command":
          out.stderr(`${e.step}: $ ${e.line}\n`);
          return;
        case "plan":
          out.stderr(`building ${e.system}: ${e.steps.map((s) => `${s.step}${s.cached ? " (cached)" : ""}`).join(", ")}\n`);
          return;
        case "start":
          out.stderr(`${e.step}: building\n`);
          return;
        case "wait":
          out.stderr(`${e.step}: waiting for keel (pid ${e.pid}), which is building it\n`);
          return;
        case "done":
          out.stderr(`${e.step}: ${e.status} in ${seconds(e.seconds)}, ${formatBytes(e.bytes)}${e.note ? `; ${e.note}` : ""}\n`);
          return;
        case "failed":
          out.stderr(`${e.step}: failed after ${seconds(e.seconds)}; log: ${e.log}\n`);
          return;
        case "summary":
          out.stderr(`${e.system}: ${e.built} built, ${e.cached} cached, ${seconds(e.seconds)}\n`);
          return;
      }
    },
    close: () => undefined,
  };
}

interface Row {
  readonly step: string;
  state: "pending" | "building" | "waiting" | "built" | "cached" | "failed";
  started?: number;
  detail: string;
  progress?: string;
}

const spinner = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

function liveReporter(out: Output): BuildReporter {
  const rows: Row[] = [];
  let title = "";
  let drawn = 0;
  let frame = 0;
  const draw = (): void => {
    const lines = [title, ...rows.map(render)];
    out.stderr(`${drawn > 0 ? `\x1b[${drawn}A` : ""}${lines.map((l) => `\x1b[2K${l}\n`).join("")}`);
    drawn = lines.length;
    frame++;
  };
  const render = (row: Row): string => {
    const elapsed = row.started === undefined ? "" : seconds((performance.now() - row.started) / 1000);
    const mark = { pending: "·", building: spinner[frame % spinner.length], waiting: "…", built: "✓", cached: "✓", failed: "✗" }[row.state];
    const live = row.state === "building" || row.state === "waiting" ? `${row.state} ${elapsed}${row.progress ? `  ${row.progress}` : ""}` : row.detail;
    return `  ${mark} ${row.step.padEnd(8)} ${live}`;
  };
  const timer = setInterval(() => {
    if (rows.some((r) => r.state === "building" || r.state === "waiting")) draw();
  }, 100);
  timer.unref();
  const row = (step: string): Row | undefined => rows.find((r) => r.step === step);
  return {
    event(e) {
      switch (e.type) {
        case "plan":
          title = `keel build ${e.system}`;
          for (const s of e.steps) rows.push({ step: s.step, state: "pending", detail: s.cached ? "cached" : "" });
          break;
        case "start": {
          const r = row(e.step);
          if (r) Object.assign(r, { state: "building", started: performance.now() });
          break;
        }
        case "wait": {
          const r = row(e.step);
          if (r) r.state = "waiting";
          break;
        }
        case "progress": {
          const r = row(e.step);
          if (r) r.progress = e.text;
          return;
        }
        case "command":
          return;
        case "done": {
          const r = row(e.step);
          if (r) Object.assign(r, { state: e.status, detail: `${e.status} ${seconds(e.seconds)}  ${formatBytes(e.bytes)}${e.note ? `  ${e.note}` : ""}` });
          break;
        }
        case "failed": {
          const r = row(e.step);
          if (r) Object.assign(r, { state: "failed", detail: `failed after ${seconds(e.seconds)}` });
          break;
        }
        case "summary":
          title = `keel build ${e.system}: ${e.built} built, ${e.cached} cached, ${seconds(e.seconds)}`;
          break;
      }
      draw();
    },
    close: () => clearInterval(timer),
  };
}

/** Rows under a header, each column as wide as its widest cell, two spaces apart. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  return [header, ...rows].map((row) => `${row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join("  ").trimEnd()}\n`).join("");
}

/**
 * One line per name on a terminal, `name | text`, each redrawn in place as
 * its text changes (only a text's first line shows); what was drawn last
 * stays on the screen.
 */
export function liveLines(out: Output, names: readonly string[]): (name: string, text: string) => void {
  const width = Math.max(...names.map((n) => n.length));
  const texts = new Map(names.map((n) => [n, ""]));
  let drawn = 0;
  return (name, text) => {
    texts.set(name, text);
    const columns = process.stderr.columns ?? 100;
    const lines = names.map((n) => `${n.padEnd(width)} | ${(texts.get(n) ?? "").split("\n")[0] ?? ""}`.slice(0, columns - 1));
    out.stderr(`${drawn > 0 ? `\x1b[${drawn}A` : ""}${lines.map((l) => `\x1b[2K${l}\n`).join("")}`);
    drawn = lines.length;
  };
}
