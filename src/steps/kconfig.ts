// Kconfig, the parts keel reads and writes: settings as a config fragment,
// a .config parsed, and the check that what was asked for stuck, with the
// `depends on` of a setting that did not (read from its Kconfig file).

/** A setting's value as `boot.kernel.settings` takes it. */
export type KernelSetting = string | number;

/** A value as .config writes it: `y`, `m`, `n` (not set), a number, `"quoted"`. */
function configValue(value: KernelSetting): string {
  if (typeof value === "number") return String(value);
  if (value === "y" || value === "m" || value === "n" || /^0x[0-9a-f]+$/i.test(value)) return value;
  return JSON.stringify(value);
}

/** The settings as a Kconfig fragment, applied after the base and the fragments. */
export function settingsFragment(settings: Readonly<Record<string, KernelSetting>>): string {
  return Object.entries(settings)
    .map(([name, value]) => (value === "n" ? `# CONFIG_${name} is not set` : `CONFIG_${name}=${configValue(value)}`))
    .map((line) => `${line}\n`)
    .join("");
}

/** A .config (or fragment) as name (without CONFIG_) → value; `# … is not set` is `n`. */
export function parseConfig(text: string): Map<string, string> {
  const values = new Map<string, string>();
  for (const line of text.split("\n")) {
    const set = /^CONFIG_(\w+)=(.*)$/.exec(line);
    if (set) values.set(set[1] as string, set[2] as string);
    const unset = /^# CONFIG_(\w+) is not set$/.exec(line);
    if (unset) values.set(unset[1] as string, "n");
  }
  return values;
}

export interface Unmet {
  readonly name: string;
  readonly wanted: string;
  /** What the final .config has: `n` when absent. */
  readonly got: string;
}

/** The requested settings (fragments, then single settings) that the final .config does not have. */
export function unmetSettings(requested: ReadonlyMap<string, string>, final: ReadonlyMap<string, string>): Unmet[] {
  const unmet: Unmet[] = [];
  for (const [name, wanted] of requested) {
    const got = final.get(name) ?? "n";
    if (got !== wanted) unmet.push({ name, wanted, got });
  }
  return unmet;
}

const blockEnd = /^\s*(config|menuconfig|choice|endchoice|menu|endmenu|if|endif|source|comment|mainmenu)\b/;

/**
 * The conditions a symbol's entry in one Kconfig file depends on: its own
 * `depends on` lines and those of the `if` blocks and menus around it.
 * Undefined when the file does not declare the symbol.
 */
export function dependsOf(kconfig: string, name: string): string[] | undefined {
  const lines = kconfig.replace(/\s*\\\n\s*/g, " ").split("\n");
  const enclosing: (string | null)[] = [];
  // Whether the `depends on` lines read now belong to the menu just opened.
  let inMenuHeader = false;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    const ifBlock = /^\s*if\s+(.+?)\s*$/.exec(line);
    const depends = /^\s*depends\s+on\s+(.+?)\s*$/.exec(line);
    if (ifBlock) enclosing.push(ifBlock[1] as string);
    else if (/^\s*endif\b/.test(line) || /^\s*endmenu\b/.test(line)) enclosing.pop();
    else if (/^\s*menu\s/.test(line)) enclosing.push(null);
    else if (depends && inMenuHeader) enclosing[enclosing.length - 1] = depends[1] as string;
    if (/^\s*menu\s/.test(line)) inMenuHeader = true;
    else if (blockEnd.test(line)) inMenuHeader = false;
    if (new RegExp(`^\\s*(menu)?config\\s+${name}\\s*$`).test(line)) {
      const own: string[] = [];
      for (let j = i + 1; j < lines.length && !blockEnd.test(lines[j] as string); j++) {
        const depends = /^\s*depends\s+on\s+(.+?)\s*$/.exec(lines[j] as string);
        if (depends) own.push(depends[1] as string);
      }
      return [...enclosing.filter((e): e is string => e !== null), ...own];
    }
  }
  return undefined;
}

/** The symbols an expression names, each with its value now (`n` when unset). */
export function symbolsOf(expression: string, final: ReadonlyMap<string, string>): string[] {
  const names = [...new Set(expression.match(/\b[A-Z][A-Z0-9_]*\b/g) ?? [])];
  return names.map((n) => `${n}=${final.get(n) ?? "n"}`);
}

/** One line per setting that did not stick: what was asked, what came out, and why, when the Kconfig says. */
export function describeUnmet(unmet: Unmet, declared: { file: string; depends: readonly string[] } | undefined, final: ReadonlyMap<string, string>): string {
  const head = `- ${unmet.name}: asked for ${unmet.wanted}, the final .config has ${unmet.got === "n" ? "it unset" : unmet.got}.`;
  if (declared === undefined) return `${head} No Kconfig file declares CONFIG_${unmet.name}: check the name (without the CONFIG_ prefix).`;
  if (declared.depends.length === 0) return `${head} ${declared.file} gives it no \`depends on\`; it may be chosen by a \`select\` or a choice elsewhere.`;
  const depends = declared.depends.map((d) => `${d} (now ${symbolsOf(d, final).join(", ")})`).join("; ");
  return `${head} ${declared.file}: depends on ${depends}.`;
}
