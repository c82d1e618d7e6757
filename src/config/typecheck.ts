// Type-checks a project's config files with TypeScript before they run, so a
// wrong option type is reported at file:line:col as the editor shows it. The
// result is remembered per project file until one of its files changes.
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync, existsSync, renameSync } from "node:fs";
import { builtinModules, createRequire } from "node:module";
import path from "node:path";
import type { CompilerOptions, Diagnostic, DiagnosticMessageChain, Node, Program, SourceFile, TypeChecker } from "typescript";
import { ConfigError } from "../errors.js";
import { hashFile } from "../host/facts.js";
import { closest } from "./tree.js";

type TypeScript = typeof import("typescript");

const maxShown = 10;

interface Manifest {
  readonly key: string;
  readonly files: Readonly<Record<string, string>>;
}

/** TypeScript's version, read without loading the compiler (that takes half a second). */
function typescriptVersion(): string {
  const require = createRequire(import.meta.url);
  return (JSON.parse(readFileSync(require.resolve("typescript/package.json"), "utf8")) as { version: string }).version;
}

/** Node's types, from the @types/node keel depends on. */
function nodeTypes(): string {
  const require = createRequire(import.meta.url);
  return path.join(path.dirname(require.resolve("@types/node/package.json")), "index.d.ts");
}

// "Cannot find module 'node:fs'", "Cannot find name 'process'" and their
// "do you need to install type definitions for node?" forms.
const needsNode = new Set([2307, 2304, 2580, 2591, 2503]);
const nodeGlobals = ["process", "Buffer", "URL", "URLSearchParams", "__dirname", "__filename", "require", "global"];
const nodeName = new RegExp(`'(?:node:[^']+|${[...builtinModules, ...nodeGlobals].map((n) => n.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")).join("|")})'|\\bnode\\b`);

/**
 * The project's type errors as one ConfigError (undefined when there are none).
 * Node's types are added only for a config that turns out to use Node, so a
 * config that does not pays nothing for them.
 */
export async function typecheckProject(projectFile: string, cacheDir: string, keelVersion: string): Promise<ConfigError | undefined> {
  const key = `${keelVersion} ${typescriptVersion()}`;
  const manifestPath = path.join(cacheDir, "typecheck", `${createHash("sha256").update(projectFile).digest("hex").slice(0, 32)}.json`);
  if (isUpToDate(manifestPath, key)) return undefined;

  const ts = (await import("typescript")).default;
  const options: CompilerOptions = {
    strict: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    allowImportingTsExtensions: true,
    resolveJsonModule: true,
    skipLibCheck: true,
    types: [],
    lib: ["lib.es2023.d.ts"],
  };
  const errorsOf = (program: Program) => ts.getPreEmitDiagnostics(program).filter((d) => d.category === ts.DiagnosticCategory.Error);
  let program = ts.createProgram([projectFile], options);
  let diagnostics = errorsOf(program);
  if (diagnostics.some((d) => needsNode.has(d.code) && nodeName.test(flatten(d.messageText)))) {
    program = ts.createProgram({ rootNames: [projectFile, nodeTypes()], options, oldProgram: program });
    diagnostics = errorsOf(program);
  }
  if (diagnostics.length > 0) {
    const checker = program.getTypeChecker();
    const shown = diagnostics.slice(0, maxShown).map((d) => {
      const text = describeDiagnostic(ts, checker, d);
      if (d.file === undefined || d.start === undefined) return text;
      const { line, character } = d.file.getLineAndCharacterOfPosition(d.start);
      return `${d.file.fileName}:${line + 1}:${character + 1} - ${text}`;
    });
    const more = diagnostics.length > maxShown ? `\n(and ${diagnostics.length - maxShown} more)` : "";
    return new ConfigError(
      `The project's config files have ${diagnostics.length === 1 ? "a type error" : `${diagnostics.length} type errors`}:\n${shown.join("\n")}${more}\n` +
        "Fix: correct the code at the places above; an editor with TypeScript shows the same errors as you type.",
    );
  }
  const files: Record<string, string> = {};
  for (const source of program.getSourceFiles()) {
    if (program.isSourceFileDefaultLibrary(source) || source.fileName.includes("/node_modules/")) continue;
    const hash = hashFile(source.fileName);
    if (hash !== undefined) files[source.fileName] = hash;
  }
  writeManifest(manifestPath, { key, files });
  return undefined;
}

function flatten(message: string | DiagnosticMessageChain): string {
  return typeof message === "string" ? message : [message.messageText, ...(message.next ?? []).map(flatten)].join(" ");
}

/**
 * TypeScript explains a mismatch from the outside in; the first line and the
 * innermost ones (the property and the types that differ) are what a user needs.
 */
function messageLines(message: string | DiagnosticMessageChain): string[] {
  const lines: string[] = [];
  for (let chain: string | DiagnosticMessageChain | undefined = message; chain !== undefined; ) {
    if (typeof chain === "string") {
      lines.push(chain);
      break;
    }
    lines.push(chain.messageText);
    chain = chain.next?.[0];
  }
  const kept = lines.length <= 4 ? lines : [lines[0] as string, "…", ...lines.slice(-3)];
  return kept.map(userTypes);
}

/** A type as a user knows it: `Wrapped<string>` is a string (or mkIf/mkForce of one); keel's other types by what they are. */
function userType(type: string): string {
  let plain = type;
  for (let previous = ""; previous !== plain; ) {
    previous = plain;
    plain = plain.replace(/\b(?:Wrapped|NoInfer|Readonly)<([^<>]*)>/g, "$1");
  }
  if (/\bProjectSpec\b/.test(plain)) return "a project (defineProject's argument)";
  if (/\bModule(?:Object|Function|Input)\b/.test(plain)) return "a module (defineModule's argument)";
  if (/\b(?:DefinitionsOf|Definitions|ResolvedOf|Option|OptionTree|ModuleParts|ModuleArgs|BuiltinOptions|If|Merge|Override|Order)</.test(plain)) return "a group of keel's options";
  return plain.length > 100 ? `'${plain.slice(0, 60)}…'` : `'${plain}'`;
}

function userTypes(line: string): string {
  return line.replace(/'([^'\n]*)'/g, (_quoted, type: string) => userType(type));
}

const wrappers = new Set(["mkIf", "mkForce", "mkDefault", "mkMerge", "mkOverride", "mkOrder", "mkBefore", "mkAfter", "mkOptionDefault"]);

function nodeAt(file: SourceFile, position: number): Node {
  let node: Node = file;
  for (let child: Node | undefined = file; child !== undefined; ) {
    node = child;
    child = node.getChildren(file).find((c) => c.getStart(file) <= position && position < c.getEnd());
  }
  return node;
}

/**
 * The option path of the property at `node` in a module: the names of the
 * object literals around it up to the defineModule call, through mkIf and the like.
 */
function optionPathAt(ts: TypeScript, start: Node): string[] | undefined {
  let node: Node | undefined = start;
  const names: string[] = [];
  for (; node !== undefined; node = node.parent) {
    if (ts.isPropertyAssignment(node) || ts.isShorthandPropertyAssignment(node) || ts.isGetAccessorDeclaration(node) || ts.isMethodDeclaration(node)) {
      const name = node.name;
      if (!ts.isIdentifier(name) && !ts.isStringLiteral(name)) return undefined;
      names.unshift(name.text);
    } else if (ts.isArrayLiteralExpression(node)) {
      names.unshift("*");
    } else if (ts.isCallExpression(node)) {
      if (!(ts.isIdentifier(node.expression) && wrappers.has(node.expression.text))) break;
    }
  }
  while (names[0] === "*") names.shift();
  if (names[0] === "config" && names.length > 1) names.shift();
  return names.length > 0 ? names : undefined;
}

/** The names an object literal may have, from the type it is checked against. */
function knownNames(ts: TypeScript, checker: TypeChecker, property: Node): string[] {
  const literal = property.parent;
  if (literal === undefined || !ts.isObjectLiteralExpression(literal)) return [];
  const type = checker.getContextualType(literal);
  if (type === undefined) return [];
  // A definition's type is a union: the value itself, or mkIf/mkForce… of it; their fields are no options.
  const types = type.isUnion() ? type.types : [type];
  const names = types.flatMap((t) => checker.getPropertiesOfType(t).map((p) => p.getName()));
  return [...new Set(names)].filter((n) => !propertyFields.has(n));
}

const propertyFields = new Set(["_type", "condition", "content", "contents", "priority"]);

/** A diagnostic in keel's words where keel knows better: a misspelled option by its path; types by their user names. */
function describeDiagnostic(ts: TypeScript, checker: TypeChecker, d: Diagnostic): string {
  const node = d.file !== undefined && d.start !== undefined ? nodeAt(d.file, d.start) : undefined;
  const property = node?.parent;
  const option = node === undefined ? undefined : optionPathAt(ts, node);
  if (option !== undefined && property !== undefined) {
    if (d.code === 2353 || d.code === 2561) {
      const name = option[option.length - 1] as string;
      const suggestion = /Did you mean to write '([^']+)'\?/.exec(flatten(d.messageText))?.[1] ?? closest(name, knownNames(ts, checker, property));
      return `The option \`${option.join(".")}' does not exist.` + (suggestion === undefined ? "" : ` Did you mean \`${[...option.slice(0, -1), suggestion].join(".")}'?`);
    }
    const head = typeof d.messageText === "string" ? d.messageText : d.messageText.messageText;
    const mismatch = d.code === 2322 && ts.isPropertyAssignment(property) ? /^Type '(.+)' is not assignable to type '(.+)'\.$/.exec(head) : null;
    if (mismatch !== null) {
      const expected = userType((mismatch[2] as string).replace(/ \| undefined$/, ""));
      return `The option \`${option.join(".")}' takes ${expected}, not ${userType(mismatch[1] as string)}.`;
    }
  }
  return messageLines(d.messageText).join("\n    ");
}

function isUpToDate(manifestPath: string, key: string): boolean {
  if (!existsSync(manifestPath)) return false;
  try {
    const manifest = JSON.parse(readFileSync(manifestPath, "utf8")) as Manifest;
    return manifest.key === key && Object.entries(manifest.files).every(([file, hash]) => hashFile(file) === hash);
  } catch {
    return false;
  }
}

function writeManifest(manifestPath: string, manifest: Manifest): void {
  mkdirSync(path.dirname(manifestPath), { recursive: true });
  const temporary = `${manifestPath}.${process.pid}.tmp`;
  writeFileSync(temporary, JSON.stringify(manifest));
  renameSync(temporary, manifestPath);
}
