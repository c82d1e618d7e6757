// What a step's builder gets: where to log, and how to run programs so that
// their output lands in the step's log and a stopped build stops them.
import { exec, type ExecOptions, type ExecResult } from "../host/exec.js";

export interface BuildContext {
  /** The step's log file. */
  readonly log: string;
  /** Environment for the programs the step runs. */
  readonly env: NodeJS.ProcessEnv;
  /** Aborted when keel is interrupted or another step failed; its reason says which. */
  readonly signal: AbortSignal;
}

export function run(context: BuildContext, argv: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
  return exec(argv, { env: context.env, log: context.log, signal: context.signal, ...options });
}
