// How a kernel's .config came about: the base, each fragment, the single
// settings, then olddefconfig. The kernel step records every stage
// (config-chain.json in its output); `keel kernel config --diff` and
// `keel kernel explain` read which stage set or changed each option.
import { parseConfig } from "../steps/kconfig.js";

export interface ConfigChain {
  /** The base as the system names it (defconfig, tinyconfig, debian, a file) and the .config it gave. */
  readonly base: { readonly label: string; readonly config: string };
  /** The fragments in order, by the path the system names them with. */
  readonly fragments: readonly { readonly name: string; readonly text: string }[];
  /** boot.kernel.settings as a fragment, applied after the fragments. */
  readonly settings: string;
  /** The .config after merge_config.sh, before olddefconfig. */
  readonly merged: string;
  /** The final .config. */
  readonly final: string;
}

export const settingsStage = "boot.kernel.settings";
export const olddefconfigStage = "olddefconfig";

export interface OptionChange {
  readonly name: string;
  /** `n` stands for unset. */
  readonly from: string;
  readonly to: string;
}

export interface StageChanges {
  /** The base's label, a fragment's name, boot.kernel.settings or olddefconfig. */
  readonly stage: string;
  readonly changes: readonly OptionChange[];
}

/** The stages that ask for values, in order: the fragments, then the settings. */
function requestStages(chain: ConfigChain): { readonly stage: string; readonly text: string }[] {
  return [...chain.fragments.map((f) => ({ stage: f.name, text: f.text })), { stage: settingsStage, text: chain.settings }];
}

/** The stages that name each option, in order. */
function requesters(chain: ConfigChain): Map<string, string[]> {
  const named = new Map<string, string[]>();
  for (const { stage, text } of requestStages(chain)) {
    for (const name of parseConfig(text).keys()) named.set(name, [...(named.get(name) ?? []), stage]);
  }
  return named;
}

function changesBetween(before: ReadonlyMap<string, string>, after: ReadonlyMap<string, string>): OptionChange[] {
  const names = [...new Set([...before.keys(), ...after.keys()])].sort();
  return names
    .map((name) => ({ name, from: before.get(name) ?? "n", to: after.get(name) ?? "n" }))
    .filter((c) => c.from !== c.to);
}

/**
 * What each stage changed, option by option: merge_config's changes are
 * given to the last fragment (or the settings) that names the option, the
 * rest of the way to the final .config to olddefconfig (defaults of new
 * options, and what the requested options select).
 */
export function chainChanges(chain: ConfigChain): StageChanges[] {
  const base = parseConfig(chain.base.config);
  const merged = parseConfig(chain.merged);
  const final = parseConfig(chain.final);
  const named = requesters(chain);
  const byStage = new Map<string, OptionChange[]>([...chain.fragments.map((f) => [f.name, []] as [string, OptionChange[]]), [settingsStage, []]]);
  for (const change of changesBetween(base, merged)) {
    const stage = named.get(change.name)?.at(-1) ?? settingsStage;
    byStage.get(stage)?.push(change);
  }
  return [...[...byStage].map(([stage, changes]) => ({ stage, changes })), { stage: olddefconfigStage, changes: changesBetween(merged, final) }];
}

export interface Provenance {
  readonly value: string;
  /** The stage that decided the final value. */
  readonly stage: string;
  /** The value in the base, and what every fragment or setting asked for. */
  readonly base: string;
  readonly requested: readonly { readonly stage: string; readonly value: string }[];
}

/** Which stage of the chain decided an option's final value. */
export function provenance(chain: ConfigChain, name: string): Provenance {
  const base = parseConfig(chain.base.config).get(name) ?? "n";
  const merged = parseConfig(chain.merged).get(name) ?? "n";
  const value = parseConfig(chain.final).get(name) ?? "n";
  const requested = requestStages(chain).flatMap(({ stage, text }) => {
    const asked = parseConfig(text).get(name);
    return asked === undefined ? [] : [{ stage, value: asked }];
  });
  const last = requested.at(-1);
  let stage = chain.base.label;
  if (value !== merged) stage = olddefconfigStage;
  else if (last !== undefined) stage = last.stage;
  return { value, stage, base, requested };
}

/** The `keel kernel config --diff` text: each stage with what it changed. */
export function formatChainChanges(chain: ConfigChain, stages: readonly StageChanges[]): string {
  const base = parseConfig(chain.base.config);
  const final = parseConfig(chain.final);
  const set = (values: ReadonlyMap<string, string>) => [...values.values()].filter((v) => v !== "n").length;
  const lines = [`base ${chain.base.label}: ${set(base)} options set`];
  for (const { stage, changes } of stages) {
    const what = stage === olddefconfigStage ? "olddefconfig (defaults of new options, and what the requested ones select)" : stage;
    lines.push("", `${what}: ${changes.length === 0 ? "no change" : `${changes.length} changed`}`);
    for (const change of changes) lines.push(`  ${change.name.padEnd(32)} ${change.from} → ${change.to}`);
  }
  lines.push("", `final: ${set(final)} options set (${[...final.values()].filter((v) => v === "y").length} y, ${[...final.values()].filter((v) => v === "m").length} m)`);
  return `${lines.join("\n")}\n`;
}
