// The entry point: parses the command line, runs one command, and is the only
// place that catches errors and turns them into messages and exit codes.
import { parseArgs } from "node:util";
import { findProjectFile, loadProject } from "../config/load.js";
import { closest } from "../config/tree.js";
import type { Project } from "../config/project.js";
import { UsageError, errorKind, isKeelError } from "../errors.js";
import { keelVersion } from "../version.js";
import { commandHelp, globalOptions, joinDashValues, mainHelp, type Command, type Context, type Globals, type Output } from "./command.js";
// Each command is imported when it runs, so a command loads only the code it uses.
const commands: Readonly<Record<string, () => Promise<Command>>> = {
  systems: async () => (await import("./systems.js")).systemsCommand,
  eval: async () => (await import("./eval.js")).evalCommand,
  options: async () => (await import("./options.js")).optionsCommand,
  lock: async () => (await import("./lock.js")).lockCommand,
  update: async () => (await import("./lock.js")).updateCommand,
  build: async () => (await import("./build.js")).buildCommand,
  image: async () => (await import("./image.js")).imageCommand,
  install: async () => (await import("./install.js")).installCommand,
  deploy: async () => (await import("./deploy.js")).deployCommand,
  diff: async () => (await import("./deploy.js")).diffCommand,
  generations: async () => (await import("./deploy.js")).generationsCommand,
  rollback: async () => (await import("./deploy.js")).rollbackCommand,
  run: async () => (await import("./run.js")).runCommand,
  ssh: async () => (await import("./ssh.js")).sshCommand,
  vm: async () => (await import("./vm.js")).vmCommand,
  flash: async () => (await import("./flash.js")).flashCommand,
  shell: async () => (await import("./shell.js")).shellCommand,
  kernel: async () => (await import("./kernel.js")).kernelCommand,
  "hardware-config": async () => (await import("./hardware.js")).hardwareCommand,
  log: async () => (await import("./log.js")).logCommand,
  gc: async () => (await import("./gc.js")).gcCommand,
  doctor: async () => (await import("./doctor.js")).doctorCommand,
};

export interface RunEnvironment {
  readonly cwd: string;
  readonly env: NodeJS.ProcessEnv;
  readonly out: Output;
}

/** Runs keel with `argv` (without the program name) and returns the exit code. */
export async function run(argv: readonly string[], environment: RunEnvironment): Promise<number> {
  const { out } = environment;
  const debug = argv.slice(0, argv.includes("--") ? argv.indexOf("--") : undefined).includes("--debug");
  try {
    return await dispatch(argv, environment);
  } catch (error) {
    reportError(error, out, debug);
    return errorKind(error) === "usage" ? 2 : 1;
  }
}

async function dispatch(all: readonly string[], environment: RunEnvironment): Promise<number> {
  // Words after `--` belong to the command (a program to run), not to keel.
  const dash = all.indexOf("--");
  const argv = dash < 0 ? all : all.slice(0, dash);
  const rest = dash < 0 ? [] : all.slice(dash + 1);
  const name = commandName(argv);
  const load = name === undefined ? undefined : Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (name !== undefined && load === undefined) {
    const suggestion = closest(name, Object.keys(commands));
    throw new UsageError(
      `keel has no command \`${name}'.${suggestion ? ` Did you mean \`${suggestion}'?` : ""}\n` +
        "Fix: run `keel --help` for the list of commands.",
    );
  }
  const command = await load?.();
  const parsed = parse(argv, command);
  const values = parsed.values as Record<string, string | string[] | boolean | undefined>;
  if (values.version) {
    environment.out.stdout(`keel ${keelVersion}\n`);
    return 0;
  }
  if (command === undefined || values.help) {
    environment.out.stdout(command ? commandHelp(command) : mainHelp(await Promise.all(Object.values(commands).map((c) => c()))));
    return command === undefined && !values.help ? 2 : 0;
  }
  const positionals = parsed.positionals.slice(1);
  const required = command.positionals.filter((p) => p.required);
  if (positionals.length < required.length) {
    const missing = required[positionals.length];
    throw new UsageError(
      `keel ${command.name}: missing the argument <${missing?.name}> (${missing?.description}).\n` +
        `Fix: run \`keel ${command.name} --help\` for its usage and examples.`,
    );
  }
  if (positionals.length > command.positionals.length) {
    throw new UsageError(
      `keel ${command.name}: unexpected argument \`${positionals[command.positionals.length]}'.\n` +
        `Fix: run \`keel ${command.name} --help\` for its usage.`,
    );
  }
  const globals: Globals = {
    project: typeof values.project === "string" ? values.project : undefined,
    debug: values.debug === true,
    typecheck: values["no-typecheck"] !== true,
  };
  let loaded: Promise<Project> | undefined;
  const context: Context = {
    cwd: environment.cwd,
    env: environment.env,
    out: environment.out,
    globals,
    project: () => {
      loaded ??= loadProject(findProjectFile(environment.cwd, globals.project), { typecheck: globals.typecheck, env: environment.env });
      return loaded;
    },
  };
  return command.run(context, { values, positionals, rest });
}

/** The first argument that is neither an option nor the value of `--project`. */
function commandName(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === "--project" || arg === "-p") i++;
    else if (!arg.startsWith("-")) return arg;
  }
  return undefined;
}

function parse(argv: readonly string[], command: Command | undefined): ReturnType<typeof parseArgs> {
  try {
    return parseArgs({
      args: joinDashValues(argv, command?.options ?? {}),
      options: { ...globalOptions, ...(command?.options ?? {}) },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    const where = command ? `keel ${command.name}` : "keel";
    const message = (error as Error).message;
    const unknown = /Unknown option '([^']+)'/.exec(message)?.[1];
    const known = Object.keys({ ...globalOptions, ...(command?.options ?? {}) }).map((name) => `--${name}`);
    const suggestion = unknown === undefined ? undefined : closest(unknown, known);
    throw new UsageError(
      (unknown === undefined ? `${where}: ${message}` : `${where}: unknown option \`${unknown}'.`) +
        (suggestion === undefined ? "" : ` Did you mean \`${suggestion}'?`) +
        `\nFix: run \`${where} --help\` for the options it takes.`,
    );
  }
}

function reportError(error: unknown, out: Output, debug: boolean): void {
  if (isKeelError(error)) {
    out.stderr(`error: ${error.message}\n`);
    const logPath = (error as { logPath?: unknown }).logPath;
    if (typeof logPath === "string" && logPath !== "") out.stderr(`The full log is in ${logPath}\n`);
    if (debug) out.stderr(`${stackOf(error)}\n`);
    return;
  }
  const message = error instanceof Error ? error.message : String(error);
  out.stderr(`error: keel failed unexpectedly: ${message}\n`);
  out.stderr(debug ? `${stackOf(error)}\n` : "This is a bug in keel; run again with --debug for the stack trace and report it.\n");
}

function stackOf(error: unknown): string {
  const lines: string[] = [];
  for (let e: unknown = error; e instanceof Error; e = e.cause) lines.push(e.stack ?? String(e));
  return lines.join("\nCaused by: ");
}
