// What a step's builder gets: where to log, and how to run programs so that
// their output lands in the step's log and a stopped build stops them.
import { exec, showCommand, type ExecOptions, type ExecResult } from "../host/exec.js";

export interface BuildContext {
  /** The step's log file. */
  readonly log: string;
  /** Environment for the programs the step runs. */
  readonly env: NodeJS.ProcessEnv;
  /** Aborted when keel is interrupted or another step failed; its reason says which. */
  readonly signal: AbortSignal;
  /** Tells how far the step is (`42%`), for the progress display. */
  readonly progress?: (text: string) => void;
  /** Shown each command line the step runs (`--verbose`), with the variables it sets beyond keel's environment. */
  readonly onCommand?: (line: string) => void;
  /** The environment keel itself runs in, to show only what a step adds to it. */
  readonly baseEnv?: NodeJS.ProcessEnv;
  /** Where the store keeps pinned .debs, content-addressed (see debs.ts). */
  readonly debs: string;
}

/** A command line as a shell would take it, with the environment variables the step set for it. */
function commandLine(context: BuildContext, argv: readonly string[], env: NodeJS.ProcessEnv): string {
  const base = context.baseEnv ?? {};
  const added = Object.entries(env)
    .filter(([name, value]) => value !== undefined && base[name] !== value)
    .map(([name, value]) => showCommand([`${name}=${value as string}`]));
  return [...added, showCommand(argv)].join(" ");
}

export function run(context: BuildContext, argv: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
  const env = options.env ?? context.env;
  context.onCommand?.(`${options.cwd ? `(cd ${showCommand([options.cwd])}) ` : ""}${commandLine(context, argv, env)}`);
  return exec(argv, { env: context.env, log: context.log, signal: context.signal, ...options });
}
