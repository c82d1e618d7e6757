import path from "node:path";
import { evaluateModules } from "../config/modules.js";
import type { OptionTree } from "../config/option.js";
import { systemModules } from "../config/project.js";
import { showPath } from "../config/show.js";
import { closest, walkOptions } from "../config/tree.js";
import { UsageError } from "../errors.js";
import { builtinModules } from "../options/index.js";
import { keelRoot } from "../version.js";
import { defineCommand, optionPathArgument } from "./command.js";

export interface OptionDoc {
  readonly name: string;
  readonly type: string;
  readonly description: string;
  readonly default?: unknown;
  /** Said instead of `default` when the default is computed. */
  readonly defaultText?: string;
  readonly example?: unknown;
  readonly declaredIn: string;
}

export const optionsCommand = defineCommand({
  name: "options",
  summary: "document the options a system can set",
  description:
    "Prints each option's name, description, type, default, example and the file that declares it.\n" +
    "Without --system it shows keel's built-in options and needs no project; with --system it adds the options that system's modules declare.\n" +
    "`<name>` in a name stands for any key of a record, `*` for any element of a list.",
  positionals: [
    { name: "prefix", required: false, description: "Show only options under this path, e.g. `services.openssh`." },
  ],
  options: {
    json: { type: "boolean", description: "Print a JSON list of the options." },
    system: { type: "string", value: "name", description: "Include the options declared by this system's modules." },
  },
  examples: [
    ["keel options services.openssh", "The OpenSSH server's options."],
    ["keel options virtualisation --json", "The VM options as JSON."],
    ["keel options --system aethelred", "Every option, including ones aethelred's own modules declare."],
  ],
  async run(context, { values, positionals }) {
    const modules = values.system === undefined ? builtinModules : [...builtinModules, ...systemModules(await context.project(), values.system)];
    const tree = evaluateModules({ modules, rootFile: "<command line>" }).tree;
    const all = [...optionDocs(tree, [], undefined)];
    const prefix = positionals[0] === undefined ? [] : optionPathArgument(positionals[0]);
    const docs = all.filter((doc) => prefix.every((name, i) => doc.path[i] === name));
    if (docs.length === 0) {
      const names = new Set(all.flatMap((d) => d.path.map((_, i) => showPath(d.path.slice(0, i + 1)))));
      const suggestion = closest(positionals[0] ?? "", [...names]);
      throw new UsageError(
        `No option is named \`${positionals[0]}' or starts with it.${suggestion ? ` Did you mean \`${suggestion}'?` : ""}\n` +
          "Fix: run `keel options` for the full list.",
      );
    }
    const shown: OptionDoc[] = docs.map(({ path: _path, ...doc }) => doc);
    context.out.stdout(values.json ? `${JSON.stringify(shown, null, 2)}\n` : shown.map(formatDoc).join("\n"));
    return 0;
  },
});

function* optionDocs(tree: OptionTree, prefix: readonly string[], inheritedFile: string | undefined): Generator<OptionDoc & { path: readonly string[] }> {
  for (const [relative, option] of walkOptions(tree)) {
    const optionPath = [...prefix, ...relative];
    const declaredIn = displayFile(inheritedFile ?? option.declaredIn);
    yield {
      path: optionPath,
      name: showPath(optionPath),
      type: option.type.description,
      description: option.description,
      ...(option.hasDefault && !option.computedDefault ? { default: option.default } : {}),
      ...(option.defaultText !== undefined ? { defaultText: option.defaultText } : option.computedDefault ? { defaultText: "computed from config when read" } : {}),
      ...(option.example !== undefined ? { example: option.example } : {}),
      declaredIn,
    };
    if (option.type.subOptions) {
      yield* optionDocs(option.type.subOptions, [...optionPath, ...(option.type.subPath ?? [])], inheritedFile ?? option.declaredIn);
    }
  }
}

/** keel's own files are shown by their source path inside the package. */
function displayFile(file: string): string {
  if (!file.startsWith(keelRoot)) return file;
  const relative = path.relative(keelRoot, file).replace(/^dist\/(.*)\.js$/, "src/$1.ts");
  return `keel/${relative}`;
}

function formatDoc(doc: OptionDoc): string {
  const lines = [doc.name, `    ${doc.description}`, `    Type: ${doc.type}`];
  if (doc.defaultText !== undefined) lines.push(`    Default: ${doc.defaultText}`);
  else if ("default" in doc) lines.push(`    Default: ${JSON.stringify(doc.default)}`);
  else lines.push("    Default: none (must be defined)");
  if ("example" in doc) lines.push(`    Example: ${JSON.stringify(doc.example)}`);
  lines.push(`    Declared in: ${doc.declaredIn}`);
  return `${lines.join("\n")}\n`;
}
