// A project: the inputs it pins and the systems it declares. Evaluating a
// system runs the module system over keel's built-in modules and the system's.
import { ConfigError, UsageError } from "../errors.js";
import { inputSpecSchema, type InputSpec } from "../inputs/spec.js";
import { builtinModules, vmModule, type BuiltinOptions } from "../options/index.js";
import type { ModuleInput } from "./module.js";
import { noteFile } from "./module.js";
import { evaluateModules, type Evaluation, type ImportGraph } from "./modules.js";
import type { ResolvedOf } from "./option.js";
import { mkOptionDefault } from "./properties.js";
import { describeValue, parseOptionPath } from "./show.js";
import * as z from "../schema.js";

export interface ProjectSpec {
  /** Sources the systems build from, by name; keel.lock pins them. */
  readonly inputs?: Readonly<Record<string, InputSpec>>;
  /** The systems, by name: each a module (usually importing shared ones) or a list of modules. */
  readonly systems: Readonly<Record<string, ModuleInput | readonly ModuleInput[]>>;
  /** More arguments for every module function of every system, as NixOS's `specialArgs` (config, lib, inputs and name are keel's). */
  readonly specialArgs?: Readonly<Record<string, unknown>>;
}

export type ProjectExport = ProjectSpec | (() => ProjectSpec | Promise<ProjectSpec>);

/** Returns its argument; the overloads give the editor the project's shape. */
export function defineProject(project: ProjectSpec): ProjectSpec;
export function defineProject(project: () => ProjectSpec | Promise<ProjectSpec>): () => ProjectSpec | Promise<ProjectSpec>;
export function defineProject(project: ProjectExport): ProjectExport {
  return project;
}

export interface Project {
  readonly file: string;
  readonly inputs: Readonly<Record<string, InputSpec>>;
  readonly systems: ReadonlyMap<string, readonly ModuleInput[]>;
  /** Which config files import which (absent for a project not loaded from files). */
  readonly imports?: ImportGraph;
  readonly specialArgs?: Readonly<Record<string, unknown>>;
}

export type ResolvedSystem = ResolvedOf<BuiltinOptions>;

export interface EvaluatedSystem {
  readonly name: string;
  readonly config: ResolvedSystem;
  readonly warnings: readonly string[];
  readonly evaluation: Evaluation;
}

const projectSchema = z.strictObject({
  inputs: z._default(z.record(z.string().check(z.regex(/^[A-Za-z][\w-]*$/, "an input name: letters, digits, - and _")), inputSpecSchema), {}),
  systems: z.record(
    z.string().check(z.regex(/^[A-Za-z][\w-]*$/, "a system name: letters, digits, - and _")),
    z.union([z.looseObject({}), z.function(), z.array(z.unknown())], {
      error: (issue) => `a module (made with defineModule, usually imported from its file) or a list of modules, not ${describeValue(issue.input)}`,
    }),
  ),
  specialArgs: z.optional(z.record(z.string(), z.unknown())),
});

/** Checks what keel.config.ts exported; types cannot catch everything (a JS config, a computed value). */
export function validateProject(file: string, exported: unknown, imports?: ImportGraph): Project {
  const parsed = projectSchema.safeParse(exported);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const where = issue.path.map(String).join(".") || "(the project)";
      return `- ${where}: ${issue.message}`;
    });
    throw new ConfigError(
      `\`${file}' does not export a valid project:\n${problems.join("\n")}\n` +
        "Fix: `export default defineProject({ inputs: { … }, systems: { name: module } })`; see examples/seed/keel.config.ts.",
    );
  }
  const systems = new Map<string, readonly ModuleInput[]>();
  for (const [name, value] of Object.entries((exported as ProjectSpec).systems)) {
    systems.set(name, Array.isArray(value) ? (value as ModuleInput[]) : [value as ModuleInput]);
  }
  const specialArgs = (exported as ProjectSpec).specialArgs;
  return { file, inputs: parsed.data.inputs as Record<string, InputSpec>, systems, ...(imports ? { imports } : {}), ...(specialArgs ? { specialArgs } : {}) };
}

export function systemModules(project: Project, name: string): readonly ModuleInput[] {
  const modules = project.systems.get(name);
  if (modules === undefined) {
    const names = [...project.systems.keys()];
    throw new UsageError(
      `There is no system \`${name}' in \`${project.file}'. Its systems: ${names.join(", ") || "(none)"}.\n` +
        "Fix: name one of those, or add it to `systems` in defineProject.",
    );
  }
  return modules;
}

/** Where an assertion's option is set, as a sentence after its message. */
function definedIn(evaluation: Evaluation, option: string | null): string {
  if (option === null) return "";
  const files = evaluation.definitionFiles(parseOptionPath(option));
  return files.length === 0 ? "" : ` (\`${option}' is set in ${files.map((f) => `\`${f}'`).join(", ")})`;
}

export interface EvaluateOptions {
  /** The system's VM variant, as `keel run` boots it: keel's VM module added, root authorized with the project's key. */
  readonly vm?: { readonly sshKey: string | null };
  /** A module the command line adds last (`keel kernel run --kconfig`), and how errors name it. */
  readonly commandLine?: { readonly label: string; readonly module: Record<string, unknown> };
}

/**
 * The system's modules evaluated lazily: each option is merged when it is
 * read (`resolve(path)`), nothing is checked. `evaluateSystem` reads all of it.
 */
export function systemEvaluation(project: Project, name: string, options: EvaluateOptions = {}): Evaluation {
  const hostName = { networking: { hostName: mkOptionDefault(name) } };
  noteFile(hostName, `${project.file} (the system's name)`);
  const own = systemModules(project, name);
  const keels = [...builtinModules, ...(options.vm ? [vmModule(options.vm.sshKey)] : [])];
  const extra = options.commandLine === undefined ? [] : [options.commandLine];
  for (const { module, label } of extra) noteFile(module, label);
  const labels = [
    ...keels.map(() => "a module of keel's"),
    "the system's name",
    ...own.map((_, i) => (own.length === 1 ? `systems.${name}` : `systems.${name}[${i}]`)),
    ...extra.map((e) => e.label),
  ];
  return evaluateModules({
    modules: [...keels, hostName, ...own, ...extra.map((e) => e.module)],
    labels,
    ...(project.imports ? { imports: project.imports } : {}),
    rootFile: project.file,
    inputs: project.inputs,
    ...(project.specialArgs ? { specialArgs: project.specialArgs } : {}),
    name,
  });
}

/** The system evaluated whole: every option merged and checked, its assertions holding. */
export function evaluateSystem(project: Project, name: string, options: EvaluateOptions = {}): EvaluatedSystem {
  const evaluation = systemEvaluation(project, name, options);
  const config = evaluation.resolve() as ResolvedSystem;
  const failed = config.assertions.filter((a) => !a.assertion);
  if (failed.length > 0) {
    throw new ConfigError(
      `The system \`${name}' fails ${failed.length === 1 ? "an assertion" : `${failed.length} assertions`}:\n` +
        failed.map((a) => `- ${a.message}${definedIn(evaluation, a.option)}`).join("\n"),
    );
  }
  return { name, config, warnings: [...config.warnings, ...evaluation.warnings], evaluation };
}
