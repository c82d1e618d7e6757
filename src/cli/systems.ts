import { defineCommand } from "./command.js";

export const systemsCommand = defineCommand({
  name: "systems",
  summary: "list the systems the project declares",
  description: "Prints the name of each system in keel.config.ts, one per line.",
  positionals: [],
  options: {
    json: { type: "boolean", description: "Print a JSON list of names." },
  },
  examples: [
    ["keel systems", "List the systems of the project around the current directory."],
    ["keel systems --project examples/seed/keel.config.ts --json", "The seed example's systems, as JSON."],
  ],
  async run(context, { values }) {
    const names = [...(await context.project()).systems.keys()];
    context.out.stdout(values.json ? `${JSON.stringify(names)}\n` : names.map((n) => `${n}\n`).join(""));
    return 0;
  },
});
