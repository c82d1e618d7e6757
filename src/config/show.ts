// Renders definition values for error messages: short, one line, like NixOS's
// `showDefs`, so that a conflict fits on the screen.

const maxLength = 120;

export function showValue(value: unknown): string {
  const text = render(value, 0);
  return text.length > maxLength ? `${text.slice(0, maxLength - 1)}…` : text;
}

function render(value: unknown, depth: number): string {
  if (value === undefined) return "undefined";
  if (typeof value === "function") return "<function>";
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value !== "object" || value === null) return JSON.stringify(value);
  if (depth > 3) return Array.isArray(value) ? "[…]" : "{…}";
  if (Array.isArray(value)) return `[${value.map((v) => render(v, depth + 1)).join(", ")}]`;
  const entries = Object.keys(value).map((key) => {
    const descriptor = Object.getOwnPropertyDescriptor(value, key);
    const shown = descriptor?.get ? "<getter>" : render(descriptor?.value, depth + 1);
    return `${/^[A-Za-z_$][\w$]*$/.test(key) ? key : JSON.stringify(key)}: ${shown}`;
  });
  return entries.length === 0 ? "{}" : `{ ${entries.join(", ")} }`;
}

/**
 * How NixOS names an option in messages: `a.b.c'. Keys that are not identifiers
 * are quoted; the docs' placeholders `<name>` (any key) and `*` (any element) are
 * not, and a list element's place is written `list[definition 1, entry 2]`.
 */
export function showPath(path: readonly string[]): string {
  return path
    .map((p) => (/^[A-Za-z_][\w-]*$|^<[\w ]+>$|^\*$|^\[.*\]$/.test(p) ? p : JSON.stringify(p)))
    .join(".")
    .replaceAll(".[", "[");
}

/** `keel options <path>`, quoted, to name in a message. */
export function optionsCommand(path: readonly string[]): string {
  return path.length === 0 ? "`keel options`" : `\`keel options ${showPath(path)}\``;
}

/** A short description of a value's kind, for "expected X, got Y". */
export function describeValue(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a record";
  if (typeof value === "string") return `the string ${showValue(value)}`;
  if (typeof value === "number") return Number.isInteger(value) ? `the integer ${value}` : `the number ${value}`;
  if (typeof value === "boolean") return `the boolean ${value}`;
  return typeof value;
}

/** Parses `a.b."c/d".e` into its names: the inverse of `showPath`. */
export function parseOptionPath(text: string): string[] {
  const names: string[] = [];
  const pattern = /"((?:[^"\\]|\\.)*)"|([^.]+)/gy;
  let position = 0;
  while (position < text.length) {
    pattern.lastIndex = position;
    const match = pattern.exec(text);
    if (match === null) break;
    names.push(match[1] !== undefined ? (JSON.parse(`"${match[1]}"`) as string) : (match[2] as string));
    position = pattern.lastIndex;
    if (text[position] === ".") position++;
    else if (position < text.length) break;
  }
  if (position < text.length || text.endsWith(".")) throw new Error(`\`${text}' is not an option path`);
  return names;
}
