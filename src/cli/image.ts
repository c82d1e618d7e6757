// placeholder until the image command lands
import type { Context } from "./command.js";

export async function diskImage(_context: Context, _system: string, _options: { readonly store?: string }): Promise<{ readonly file: string; readonly bytes: number }> {
  throw new Error("not yet");
}
