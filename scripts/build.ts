// Builds dist/: keel bundled by esbuild (npm run build then adds tsc's .d.ts
// files). Node's ESM loader costs about a millisecond per module, and keel is a
// hundred modules; bundled, a command loads a dozen files.
//
// - dist/cli.js (bin/keel.js) and dist/index.js (`import … from "keel"`) share
//   chunks, so a config and the CLI use one copy of each class (ConfigError …).
// - Each built-in option module (src/options/X.ts) stays a file of its own,
//   dist/options/X.js: a module is noted with the file its stack frames name,
//   and `keel options` shows keel/src/options/X.ts as where an option is declared.
// - Chunks sit in dist/ itself, where src/version.ts finds ../package.json.
// - typescript and esbuild are loaded only to check or compile a changed config.
import { readdirSync, rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const root = fileURLToPath(new URL("../", import.meta.url));
const src = path.join(root, "src");
const dist = path.join(root, "dist");
const optionsDir = path.join(src, "options");

/** src/options/**.ts but index.ts: the modules that declare keel's built-in options. */
function optionModules(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) return optionModules(file);
    return entry.name.endsWith(".ts") && file !== path.join(optionsDir, "index.ts") ? [file] : [];
  });
}

const options = optionModules(optionsDir);
const outputOf = (file: string): string => path.join(dist, path.relative(src, file).replace(/\.ts$/, ".js"));

// An import of an option module stays an import of its own output file rather than being bundled in.
const separateOptionModules: esbuild.Plugin = {
  name: "separate-option-modules",
  setup(build) {
    build.onResolve({ filter: /^\.\.?\// }, (args) => {
      const file = path.resolve(args.resolveDir, args.path).replace(/\.js$/, ".ts");
      if (args.kind === "entry-point" || !options.includes(file)) return undefined;
      const from = options.includes(args.importer) ? path.dirname(outputOf(args.importer)) : dist;
      return { path: `./${path.relative(from, outputOf(file))}`, external: true };
    });
  },
};

rmSync(dist, { recursive: true, force: true });
const result = await esbuild.build({
  absWorkingDir: root,
  entryPoints: [
    { in: "src/cli/main.ts", out: "cli" },
    { in: "src/index.ts", out: "index" },
    ...options.map((file) => ({ in: file, out: path.relative(src, file).replace(/\.ts$/, "") })),
  ],
  outdir: dist,
  chunkNames: "[name]-[hash]",
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  external: ["typescript", "esbuild"],
  sourcemap: "linked",
  sourcesContent: false,
  metafile: true,
  logLevel: "warning",
  plugins: [separateOptionModules],
});

// Guard the layout the list above relies on: only option modules below dist/, each alone in its file.
for (const [output, { inputs }] of Object.entries(result.metafile.outputs)) {
  if (output.endsWith(".map") || path.dirname(path.resolve(root, output)) === dist) continue;
  const sources = Object.keys(inputs).map((input) => path.resolve(root, input));
  if (sources.length !== 1 || outputOf(sources[0] as string) !== path.resolve(root, output)) {
    throw new Error(`${output} bundles ${sources.join(", ")}; only an option module's own code belongs below dist/.`);
  }
}
