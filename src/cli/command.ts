// The shape of a keel command: one file each, typed options, usage text and
// examples next to the code, output through the context so tests can read it.
import type { Project } from "../config/project.js";
import { parseOptionPath } from "../config/show.js";
import { UsageError } from "../errors.js";

export interface OptionSpec {
  readonly type: "string" | "boolean";
  readonly short?: string;
  readonly multiple?: boolean;
  readonly value?: string;
  /** Its value is other options (ssh's): the argument after it is its value even when it starts with a dash (`--ssh-opts '-p 8022'`). */
  readonly dashValue?: boolean;
  readonly description: string;
}

export type OptionSpecs = Readonly<Record<string, OptionSpec>>;

/** `--name value` as `--name=value` for the options whose value may start with a dash (parseArgs would take it for an option). */
export function joinDashValues(argv: readonly string[], options: OptionSpecs): string[] {
  const joined: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === "--") return [...joined, ...argv.slice(i)];
    const name = arg.startsWith("--") ? arg.slice(2) : undefined;
    if (name !== undefined && options[name]?.dashValue === true && i + 1 < argv.length) joined.push(`${arg}=${argv[++i] as string}`);
    else joined.push(arg);
  }
  return joined;
}

type ValueOf<S extends OptionSpec> = S extends { type: "string"; multiple: true }
  ? string[]
  : S extends { type: "string" }
    ? string
    : S extends { type: "boolean" }
      ? boolean
      : string | string[] | boolean;

export type Values<O extends OptionSpecs> = { readonly [K in keyof O]?: ValueOf<O[K]> };

export interface PositionalSpec {
  readonly name: string;
  readonly required: boolean;
  readonly description: string;
}

/**
 * A number of seconds given as `--<option>`: the default when absent, else a
 * finite number at least `min` (a usage error naming the option otherwise).
 */
export function secondsOption(text: string | undefined, where: string, option: string, fallback: number, min = Number.MIN_VALUE): number {
  if (text === undefined) return fallback;
  const seconds = Number(text);
  if (!Number.isFinite(seconds) || seconds < min) {
    throw new UsageError(`${where}: --${option} ${text} is not a number of seconds.\nFix: give a ${min > 0 ? "positive " : ""}number, e.g. --${option} ${fallback}.`);
  }
  return seconds;
}

/** The argument naming a system, as most commands take it first. */
export const systemArgument: PositionalSpec = { name: "system", required: true, description: "A system of the project (see `keel systems`)." };

/** An option path given on the command line, as names. */
export function optionPathArgument(text: string): string[] {
  try {
    return parseOptionPath(text);
  } catch {
    throw new UsageError(
      `\`${text}' is not an option path.\nFix: write names separated by dots, quoting names with dots or slashes: environment.etc."ssh/sshd_config".`,
    );
  }
}

export interface Output {
  stdout(text: string): void;
  stderr(text: string): void;
  /** Whether standard error is a terminal (live progress) or not (plain lines). */
  readonly interactive?: boolean;
}

export interface Globals {
  readonly project?: string;
  readonly debug: boolean;
  readonly typecheck: boolean;
}

export interface Context {
  readonly cwd: string;
  readonly env: NodeJS.ProcessEnv;
  readonly out: Output;
  readonly globals: Globals;
  /** The project around the working directory (or `--project`), loaded once. */
  project(): Promise<Project>;
}

export interface Command<O extends OptionSpecs = OptionSpecs> {
  readonly name: string;
  readonly summary: string;
  readonly description: string;
  readonly positionals: readonly PositionalSpec[];
  readonly options: O;
  readonly examples: readonly (readonly [command: string, explanation: string])[];
  run(
    context: Context,
    args: { readonly values: Values<O>; readonly positionals: readonly string[]; readonly rest: readonly string[] },
  ): Promise<number>;
}

/** Identity, for inference of each command's option values. */
export function defineCommand<const O extends OptionSpecs>(command: Command<O>): Command<O> {
  return command;
}

export const globalOptions = {
  project: { type: "string", short: "p", value: "file", description: "The project file (default: keel.config.ts here or in a directory above)." },
  debug: { type: "boolean", description: "Show stack traces and internal detail on errors." },
  "no-typecheck": { type: "boolean", description: "Skip type-checking the config files before loading them." },
  help: { type: "boolean", short: "h", description: "Show help." },
  version: { type: "boolean", short: "V", description: "Print keel's version." },
} as const satisfies OptionSpecs;

function optionLines(options: OptionSpecs): string[] {
  const rows = Object.entries(options).map(([name, spec]) => {
    const flag = `${spec.short ? `-${spec.short}, ` : "    "}--${name}${spec.type === "string" ? ` <${spec.value ?? "value"}>` : ""}`;
    return [flag, spec.description + (spec.multiple ? " May be repeated." : "")] as const;
  });
  const width = Math.max(...rows.map(([flag]) => flag.length));
  return rows.map(([flag, text]) => `  ${flag.padEnd(width)}  ${text}`);
}

function usageLine(command: Command): string {
  const positionals = command.positionals.map((p) => (p.required ? `<${p.name}>` : `[${p.name}]`));
  return ["keel", command.name, ...positionals, ...(Object.keys(command.options).length > 0 ? ["[options]"] : [])].join(" ");
}

export function commandHelp(command: Command): string {
  const lines = [`keel ${command.name} — ${command.summary}`, "", `Usage: ${usageLine(command)}`, "", command.description];
  if (command.positionals.length > 0) {
    lines.push("", "Arguments:");
    const width = Math.max(...command.positionals.map((p) => p.name.length + 2));
    for (const p of command.positionals) lines.push(`  ${`<${p.name}>`.padEnd(width)}  ${p.description}`);
  }
  if (Object.keys(command.options).length > 0) lines.push("", "Options:", ...optionLines(command.options));
  lines.push("", "Global options:", ...optionLines(globalOptions));
  lines.push("", "Examples:");
  for (const [example, explanation] of command.examples) lines.push(`  ${example}`, `      ${explanation}`);
  return `${lines.join("\n")}\n`;
}

export function mainHelp(commands: readonly Command[]): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    "keel — declare Linux machines as typed TypeScript modules; build, run and deploy them.",
    "",
    "Usage: keel <command> [arguments] [options]",
    "",
    "Commands:",
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    "Global options:",
    ...optionLines(globalOptions),
    "",
    "Examples:",
    "  keel systems",
    "      List the systems of the project around the current directory.",
    "  keel eval qemu networking.hostName",
    "      Print one option of the system `qemu'.",
    "  keel options services.openssh",
    "      Document the OpenSSH options.",
    "",
    "Run `keel <command> --help` for a command's arguments, options and examples.",
    "",
  ].join("\n");
}
