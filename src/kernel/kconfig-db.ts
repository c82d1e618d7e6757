// The Kconfig language, as much of it as `keel kernel explain` needs: every
// `config` entry of a source tree (following `source` from the top Kconfig,
// for one architecture) with its type, prompt, help, defaults and what it
// depends on, and the reverse edges — who selects or implies it.
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";

/** A condition attached to an attribute (`select FOO if BAR`), or null. */
export interface Conditional {
  readonly value: string;
  readonly condition: string | null;
}

export interface KconfigEntry {
  readonly name: string;
  /** Where it is declared: the file relative to the tree and the line of `config NAME`. */
  readonly file: string;
  readonly line: number;
  readonly type: string | null;
  readonly prompt: string | null;
  readonly help: string;
  /** The entry's own `depends on` lines and those of the `if` blocks and menus around it. */
  readonly depends: readonly string[];
  readonly defaults: readonly Conditional[];
  readonly selects: readonly Conditional[];
  readonly implies: readonly Conditional[];
}

export interface ReverseEdge {
  /** The entry that selects or implies. */
  readonly by: string;
  readonly condition: string | null;
}

export interface KconfigDatabase {
  /** Every declaration of a symbol (a symbol may be declared in several places). */
  readonly entries: ReadonlyMap<string, readonly KconfigEntry[]>;
  readonly selectedBy: ReadonlyMap<string, readonly ReverseEdge[]>;
  readonly impliedBy: ReadonlyMap<string, readonly ReverseEdge[]>;
}

const typeWords = ["bool", "tristate", "string", "hex", "int", "def_bool", "def_tristate"] as const;

interface Builder {
  name: string;
  file: string;
  line: number;
  type: string | null;
  prompt: string | null;
  help: string[];
  depends: string[];
  defaults: Conditional[];
  selects: Conditional[];
  implies: Conditional[];
}

/** `"text" if cond` / `FOO if cond` split at a top-level ` if `. */
function splitCondition(text: string): Conditional {
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '"' && text[i - 1] !== "\\") quoted = !quoted;
    if (!quoted && /\sif\s/.test(text.slice(i, i + 4))) return { value: text.slice(0, i).trim(), condition: text.slice(i + 4).trim() };
  }
  return { value: text.trim(), condition: null };
}

function unquote(text: string): string {
  const match = /^"((?:[^"\\]|\\.)*)"$/.exec(text.trim());
  return match ? (match[1] as string).replace(/\\(.)/g, "$1") : text.trim();
}

/** A line's indentation width, tabs to the next multiple of 8. */
function indentOf(line: string): number {
  let width = 0;
  for (const c of line) {
    if (c === " ") width++;
    else if (c === "\t") width = (Math.floor(width / 8) + 1) * 8;
    else break;
  }
  return width;
}

/** `$(SRCARCH)`-style variables in a `source` path. */
function expand(text: string, variables: Readonly<Record<string, string>>): string {
  return text.replace(/\$\((\w+)\)/g, (_, name: string) => variables[name] ?? "");
}

/**
 * Reads the tree's Kconfig files from `top` (relative to `root`) for the
 * variables given (SRCARCH at least), and indexes every entry.
 */
export function readKconfig(root: string, variables: Readonly<Record<string, string>>, top = "Kconfig"): KconfigDatabase {
  const entries = new Map<string, KconfigEntry[]>();
  const selectedBy = new Map<string, ReverseEdge[]>();
  const impliedBy = new Map<string, ReverseEdge[]>();
  const add = <T>(map: Map<string, T[]>, key: string, value: T): void => {
    const list = map.get(key);
    if (list) list.push(value);
    else map.set(key, [value]);
  };
  const seen = new Set<string>();

  const finish = (entry: Builder | null): void => {
    if (entry === null) return;
    add(entries, entry.name, { ...entry, help: entry.help.join("\n").replace(/\s+$/, "") });
    for (const s of entry.selects) add(selectedBy, s.value, { by: entry.name, condition: s.condition });
    for (const s of entry.implies) add(impliedBy, s.value, { by: entry.name, condition: s.condition });
  };

  // `enclosing` carries the conditions of the if blocks and menus the file is read inside.
  const readFile = (file: string, enclosing: (string | null)[]): void => {
    const full = path.join(root, file);
    if (seen.has(file) || !existsSync(full)) return;
    seen.add(file);
    const raw = readFileSync(full, "utf8").split("\n");
    const stack = [...enclosing];
    let entry: Builder | null = null;
    let blockHeader = false;
    for (let i = 0; i < raw.length; i++) {
      let line = raw[i] as string;
      const number = i + 1;
      while (line.endsWith("\\") && i + 1 < raw.length) line = `${line.slice(0, -1)} ${(raw[++i] as string).trim()}`;
      const text = line.replace(/^\s+/, "");
      if (text === "" || text.startsWith("#")) continue;
      const [word = "", ...restWords] = text.split(/\s+/);
      const rest = restWords.join(" ");

      if (word === "help" || word === "---help---") {
        const helpIndent = indentOf(line);
        const help: string[] = [];
        let blockIndent: number | undefined;
        while (i + 1 < raw.length) {
          const next = raw[i + 1] as string;
          if (next.trim() === "") {
            help.push("");
            i++;
            continue;
          }
          const width = indentOf(next);
          if (width <= helpIndent && blockIndent === undefined) break;
          blockIndent ??= width;
          if (width < blockIndent) break;
          help.push(next.trimEnd().replace(/^\s+/, " ".repeat(width - blockIndent)));
          i++;
        }
        if (entry) entry.help.push(...help);
        continue;
      }

      const opensBlock = ["config", "menuconfig", "choice", "endchoice", "menu", "endmenu", "if", "endif", "source", "rsource", "osource", "orsource", "comment", "mainmenu"].includes(word);
      if (opensBlock) {
        finish(entry);
        entry = null;
      }
      // A menu's or a choice's own `depends on` lines, before its first entry, condition all inside it.
      if (word === "menu" || word === "choice") {
        stack.push(null);
        blockHeader = true;
        continue;
      }
      if (word !== "depends" && word !== "visible") blockHeader = false;

      switch (word) {
        case "config":
        case "menuconfig":
          entry = {
            name: rest.trim(), file, line: number, type: null, prompt: null, help: [],
            depends: stack.filter((c): c is string => c !== null), defaults: [], selects: [], implies: [],
          };
          break;
        case "if":
          stack.push(rest.trim());
          break;
        case "endif":
        case "endmenu":
        case "endchoice":
          stack.pop();
          break;
        case "source":
        case "osource":
        case "rsource":
        case "orsource": {
          const named = expand(unquote(rest), variables);
          const relative = word.startsWith("r") || word === "orsource" ? path.join(path.dirname(file), named) : named;
          readFile(relative, stack);
          break;
        }
        case "depends": {
          const condition = rest.replace(/^on\s+/, "").trim();
          if (entry) entry.depends.push(condition);
          else if (blockHeader) stack[stack.length - 1] = condition;
          break;
        }
        default: {
          if (entry === null) break;
          if ((typeWords as readonly string[]).includes(word)) {
            entry.type = word.replace(/^def_/, "");
            if (word.startsWith("def_")) entry.defaults.push(splitCondition(rest));
            else if (rest !== "") entry.prompt = unquote(splitCondition(rest).value);
          } else if (word === "prompt") entry.prompt = unquote(splitCondition(rest).value);
          else if (word === "default") entry.defaults.push(splitCondition(rest));
          else if (word === "select") entry.selects.push(splitCondition(rest));
          else if (word === "imply") entry.implies.push(splitCondition(rest));
        }
      }
    }
    finish(entry);
  };
  readFile(top, []);
  return { entries, selectedBy, impliedBy };
}
