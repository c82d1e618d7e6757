// `keel diff`'s report: what deploying a system would change on its machine
// (src/deploy/diff.ts reads it), a section per kind, "unchanged" said
// rather than left out.
import type { SystemDiff } from "../deploy/diff.js";
import { formatBytes } from "./output.js";

/** The diff as keel prints it. */
export function formatDiff(diff: SystemDiff): string {
  const lines: string[] = [];
  const { packages, kernel, units, files } = diff;
  const count = packages.added.length + packages.removed.length + packages.upgraded.length;
  lines.push(`packages: ${count === 0 ? "unchanged" : `${packages.added.length} added, ${packages.removed.length} removed, ${packages.upgraded.length} upgraded`}`);
  for (const p of packages.added) lines.push(`  + ${p.name} ${p.version}`);
  for (const p of packages.removed) lines.push(`  - ${p.name} ${p.version}`);
  for (const p of packages.upgraded) lines.push(`  ~ ${p.name} ${p.from} -> ${p.to}`);
  lines.push(`kernel: ${kernel.from === kernel.to ? `${kernel.to} (release unchanged)` : `${kernel.from ?? "(unknown)"} -> ${kernel.to}`}`);
  if (kernel.config === null) lines.push("  config: not known for the running generation (it was laid out before keel kept the kernel's config)");
  else if (kernel.config.length === 0) lines.push("  config: unchanged");
  else {
    lines.push(`  config: ${kernel.config.length} options changed`);
    const value = (v: string | null) => v ?? "(unset)";
    for (const c of kernel.config.slice(0, 60)) lines.push(`    CONFIG_${c.option}: ${value(c.from)} -> ${value(c.to)}`);
    if (kernel.config.length > 60) lines.push(`    (${kernel.config.length - 60} more)`);
  }
  const etcCount = (change: string) => diff.etc.filter((e) => e.file !== "" && e.change === change).length;
  lines.push(`/etc: ${diff.etc.length === 0 ? "unchanged" : `${etcCount("changed")} changed, ${etcCount("added")} added, ${etcCount("removed")} removed`}`);
  for (const e of diff.etc) lines.push(e.diff.startsWith("(") && e.file !== "" ? `  ${e.change} /${e.file} ${e.diff}` : e.diff.replace(/^/gm, "  "));
  const unitCount = units.added.length + units.removed.length + units.changed.length;
  lines.push(`systemd units: ${unitCount === 0 ? "unchanged" : `${units.added.length} added, ${units.removed.length} removed, ${units.changed.length} changed`}`);
  for (const u of units.added) lines.push(`  + ${u}`);
  for (const u of units.removed) lines.push(`  - ${u}`);
  for (const u of units.changed) lines.push(`  ~ ${u}`);
  const times = files.timesOnly === 0 ? "" : `; ${files.timesOnly} more differ only in their times`;
  lines.push(
    `files: ${files.changed} changed, ${files.added} added, ${files.removed} removed${times}; a copy sends ${formatBytes(diff.bytes)} before rsync's deltas and compression ` +
      `(${((diff.bytes / Math.max(diff.size, 1)) * 100).toFixed(1)}% of the system's ${formatBytes(diff.size)})`,
  );
  return `${lines.join("\n")}\n`;
}
