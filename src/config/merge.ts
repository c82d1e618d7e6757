// Merging one option's definitions, as nixpkgs' `mergeDefinitions`: discharge
// properties (mkMerge, mkIf), keep the highest priority (mkOverride), sort by
// order (mkOrder), check each value against the type, let the type merge.
import { ConfigError } from "../errors.js";
import type { AnyType, Definition, Path } from "./option.js";
import { orders, priorities, propertyOf } from "./properties.js";
import { describeValue, showPath, showValue } from "./show.js";

/** A getter in a module, read only when its option is merged: keel's laziness. */
export class Thunk {
  constructor(readonly force: () => unknown) {}
}

export function forceValue(value: unknown): unknown {
  return value instanceof Thunk ? value.force() : value;
}

interface Discharged extends Definition {
  readonly priority: number;
  readonly order: number;
}

function discharge(def: Definition, path: Path, priority: number, order: number, out: Discharged[]): void {
  const value = forceValue(def.value);
  const property = propertyOf(value);
  if (property === undefined) {
    out.push({ file: def.file, value, priority, order });
    return;
  }
  switch (property._type) {
    case "merge":
      for (const content of property.contents) discharge({ file: def.file, value: content }, path, priority, order, out);
      return;
    case "if":
      if (typeof property.condition !== "boolean") {
        throw new ConfigError(
          `mkIf was given ${describeValue(property.condition)} as its condition for the option \`${showPath(path)}' in \`${def.file}'.\n` +
            `Fix: pass a boolean, e.g. mkIf(config.services.openssh.enable, …) or mkIf(x !== null, …).`,
        );
      }
      if (property.condition) discharge({ file: def.file, value: property.content }, path, priority, order, out);
      return;
    case "override":
      discharge({ file: def.file, value: property.content }, path, property.priority, order, out);
      return;
    case "order":
      discharge({ file: def.file, value: property.content }, path, priority, property.priority, out);
      return;
  }
}

export interface MergeTarget {
  readonly type: AnyType;
  readonly hasDefault?: boolean;
  readonly default?: unknown;
  readonly declaredIn?: string;
}

export type MergeResult = { readonly defined: true; readonly value: unknown } | { readonly defined: false };

/**
 * The definitions that take effect, in order: properties discharged, only the
 * highest priority kept, each value checked against the type.
 */
function effectiveDefinitions(path: Path, target: MergeTarget, defs: readonly Definition[]): Definition[] {
  return checkedDefinitions(path, target, prevailingDefinitions(target, defs, path));
}

/** `kept`, each value checked against the type. */
function checkedDefinitions(path: Path, target: MergeTarget, kept: Definition[]): Definition[] {
  for (const def of kept) {
    if (!target.type.check(def.value)) throw typeMismatch(path, target.type, def);
  }
  return kept;
}

/** The definitions of the highest priority, properties discharged, in order; not yet checked against the type. */
function prevailingDefinitions(target: MergeTarget, defs: readonly Definition[], path: Path): Definition[] {
  const all: Discharged[] = [];
  for (const def of defs) discharge(def, path, priorities.plain, orders.default, all);
  if (target.hasDefault) {
    all.push({ file: target.declaredIn ?? "<default>", value: target.default, priority: priorities.optionDefault, order: orders.default });
  }
  if (all.length === 0) return [];
  const highest = Math.min(...all.map((d) => d.priority));
  const kept = all.filter((d) => d.priority === highest);
  kept.sort((a, b) => a.order - b.order);
  return kept.map(({ file, value }) => ({ file, value }));
}

export function mergeDefinitions(path: Path, target: MergeTarget, defs: readonly Definition[]): MergeResult {
  const effective = effectiveDefinitions(path, target, defs);
  if (effective.length === 0) return { defined: false };
  return { defined: true, value: target.type.merge(path, effective) };
}

/**
 * Whether the definitions define the option (their properties discharged:
 * mkIf, priorities), and a merge of them run only when asked for, once: a
 * record's value per name, as NixOS's attribute values are thunks.
 */
export function mergeLater(path: Path, target: MergeTarget, defs: readonly Definition[]): (() => unknown) | undefined {
  // Discharged once: a getter among the definitions is not read again when the value is merged.
  const kept = prevailingDefinitions(target, defs, path);
  if (kept.length === 0) return undefined;
  let merged: { readonly value: unknown } | undefined;
  return () => (merged ??= { value: target.type.merge(path, checkedDefinitions(path, target, kept)) }).value;
}

export function typeMismatch(path: Path, type: AnyType, def: Definition): ConfigError {
  return new ConfigError(
    `A definition for option \`${showPath(path)}' is not of type \`${type.description}': it is ${describeValue(def.value)}.\n` +
      `- In \`${def.file}': ${showValue(def.value)}\n` +
      `Fix: give \`${showPath(path)}' a value of type \`${type.description}' in \`${def.file}'.`,
  );
}

export function showDefinitions(defs: readonly Definition[]): string {
  return defs.map((d) => `- In \`${d.file}': ${showValue(d.value)}`).join("\n");
}

export function notDefined(path: Path): ConfigError {
  return new ConfigError(
    `The option \`${showPath(path)}' is used but not defined.\n` +
      `Fix: define \`${showPath(path)}' in one of the system's modules.`,
  );
}
