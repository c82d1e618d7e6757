// Asking before something is destroyed (a disk written by keel flash or keel
// install): --yes, or an answer on the terminal; never a guess without one.
import { createInterface } from "node:readline";
import { UsageError } from "../errors.js";
import type { Context } from "./command.js";

export interface Confirmation {
  readonly yes: boolean;
  /** What is about to be overwritten, as the user should check it. */
  readonly shown: string;
  readonly question: string;
  /** Said without a terminal and without --yes, followed by what was shown. */
  readonly refusal: string;
  readonly fix: string;
}

/** --yes, or the user's answer on the terminal; without a terminal a UsageError that shows the target and asks for --yes. */
export async function confirm(context: Context, confirmation: Confirmation): Promise<boolean> {
  if (confirmation.yes) return true;
  if (process.stdin.isTTY !== true || context.out.interactive !== true) {
    throw new UsageError(`${confirmation.refusal}:\n${confirmation.shown}\nFix: ${confirmation.fix}.`);
  }
  context.out.stderr(`${confirmation.shown}\n${confirmation.question}`);
  return /^\s*y(es)?\s*$/i.test(await readAnswer());
}

/** One line from the terminal ("" at end of input). */
async function readAnswer(): Promise<string> {
  const lines = createInterface({ input: process.stdin, terminal: false });
  try {
    for await (const line of lines) return line;
    return "";
  } finally {
    lines.close();
  }
}

/**
 * A secret (a sudo password) from the terminal without echoing it, or the
 * first line of standard input when that is not a terminal (as `sudo -S`
 * reads one).
 */
export async function askSecret(context: Context, prompt: string): Promise<string> {
  const stdin = process.stdin;
  if (stdin.isTTY !== true) return readAnswer();
  context.out.stderr(prompt);
  stdin.setRawMode(true);
  stdin.resume();
  try {
    return await new Promise<string>((resolve, reject) => {
      let secret = "";
      const onData = (chunk: Buffer) => {
        for (const c of chunk.toString("utf8")) {
          if (c === "\r" || c === "\n" || c === "\u0004") {
            stdin.removeListener("data", onData);
            return resolve(secret);
          }
          if (c === "\u0003") {
            stdin.removeListener("data", onData);
            return reject(new UsageError("keel: interrupted at the password prompt."));
          }
          secret = c === "\u007f" ? secret.slice(0, -1) : secret + c;
        }
      };
      stdin.on("data", onData);
    });
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
    context.out.stderr("\n");
  }
}
