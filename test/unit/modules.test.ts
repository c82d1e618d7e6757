// The module system against tiny fixture modules, in the manner of nixpkgs'
// lib/tests/modules.sh: each test evaluates a few files of
// test/fixtures/modules and checks one option's value or the exact error.
//
// Fixture names: declare-* declare options, define-* define them, the rest
// (cycle-*, import-*, assert-*, …) say what they exercise. Definitions that a
// test expects to be refused carry a `@ts-expect-error` where the editor
// already refuses them; the module system must refuse them at run time too.
import assert from "node:assert/strict";
import path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { ModuleInput } from "../../src/config/module.ts";
import { evaluateModules } from "../../src/config/modules.ts";
import { evaluateSystem, type EvaluatedSystem } from "../../src/config/project.ts";
import { ConfigError } from "../../src/errors.ts";

const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../fixtures/modules");

async function load(names: readonly string[]): Promise<ModuleInput[]> {
  return Promise.all(
    names.map(async (name) => {
      const imported = (await import(pathToFileURL(path.join(fixtures, `${name}.ts`)).href)) as { default: ModuleInput };
      return imported.default;
    }),
  );
}

/** `a.b.c` as a path; "" is the whole configuration. */
function parsePath(optionPath: string): string[] {
  return optionPath === "" ? [] : optionPath.split(".");
}

function showError(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** Asserts that `run` throws a ConfigError whose message, with the fixtures directory as `<fixtures>`, is `expected`. */
function assertConfigError(expected: string, run: () => unknown): void {
  let result: unknown;
  try {
    result = run();
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${showError(error)}`);
    assert.equal(error.message.replaceAll(fixtures, "<fixtures>"), expected);
    return;
  }
  assert.fail(`expected a ConfigError, got the value ${JSON.stringify(result)}`);
}

/** modules.sh's checkConfigOutput: the option's value when the fixtures are evaluated together. */
async function checkConfigOutput(expected: unknown, optionPath: string, ...names: string[]): Promise<void> {
  const modules = await load(names);
  const evaluation = evaluateModules({ modules, rootFile: path.join(fixtures, "root.ts") });
  assert.deepEqual(evaluation.resolve(parsePath(optionPath)), expected);
}

/** modules.sh's checkConfigError: evaluating the fixtures, or reading the option, fails with exactly this message. */
async function checkConfigError(expected: string, optionPath: string, ...names: string[]): Promise<void> {
  const modules = await load(names);
  assertConfigError(expected, () => evaluateModules({ modules, rootFile: path.join(fixtures, "root.ts") }).resolve(parsePath(optionPath)));
}

const rootFileSystem: ModuleInput = { config: { fileSystems: { "/": { device: "/dev/vda", fsType: "ext4" } } } };

/** A system `test' of a fake project: keel's built-in modules, a root file system and the fixtures. */
function system(modules: readonly ModuleInput[], root: readonly ModuleInput[] = [rootFileSystem]): EvaluatedSystem {
  const project = { file: path.join(fixtures, "keel.config.ts"), inputs: {}, systems: new Map([["test", [...root, ...modules]]]) };
  return evaluateSystem(project, "test");
}

async function checkSystemOutput(expected: unknown, optionPath: string, ...names: string[]): Promise<void> {
  assert.deepEqual(system(await load(names)).evaluation.resolve(parsePath(optionPath)), expected);
}

async function checkSystemError(expected: string, ...names: string[]): Promise<void> {
  const modules = await load(names);
  assertConfigError(expected, () => system(modules));
}

/** A multi-line message, one argument a line. */
const msg = (...lines: string[]): string => lines.join("\n");

const conflictFix = "Fix: use `mkForce(value)` to force one value, or `mkDefault(value)` to lower the priority of the others.";
const cycleFix = "Fix: break the cycle: one of these options must be defined without reading the others.";
const notDefined = (name: string) => msg(`The option \`${name}' is used but not defined.`, `Fix: define \`${name}' in one of the system's modules.`);
const wrongType = (name: string, type: string, it: string, file: string, shown: string) =>
  msg(
    `A definition for option \`${name}' is not of type \`${type}': it is ${it}.`,
    `- In \`<fixtures>/${file}': ${shown}`,
    `Fix: give \`${name}' a value of type \`${type}' in \`<fixtures>/${file}'.`,
  );

describe("scalars", () => {
  it("one definition", () => checkConfigOutput(1, "value", "declare-int", "define-value-1"));
  it("equal definitions merge", () => checkConfigOutput(1, "value", "declare-int", "define-value-1", "define-value-1-again"));
  it("different definitions conflict, naming each file and value", () =>
    checkConfigError(msg("The option `value' has conflicting definition values:", "- In `<fixtures>/define-value-1.ts': 1", "- In `<fixtures>/define-value-2.ts': 2", conflictFix), "value", "declare-int", "define-value-1", "define-value-2"));
  it("strings conflict too", () =>
    checkConfigError(msg("The option `value' has conflicting definition values:", "- In `<fixtures>/define-value-hello.ts': \"hello\"", "- In `<fixtures>/define-value-world.ts': \"world\"", conflictFix), "value", "declare-str", "define-value-hello", "define-value-world"));
  it("an option without definitions is used but not defined", () => checkConfigError(notDefined("value"), "value", "declare-int"));
  it("enum accepts its values", () => checkConfigOutput("b", "value", "declare-enum", "define-enum-b"));
});

describe("types", () => {
  it("int refuses a string, naming the defining file", () =>
    checkConfigError(wrongType("value", "integer", 'the string "a string"', "define-value-string.ts", '"a string"'), "value", "declare-int", "define-value-string"));
  it("int refuses a fraction", () => checkConfigError(wrongType("value", "integer", "the number 1.5", "define-value-float.ts", "1.5"), "value", "declare-int", "define-value-float"));
  it("port refuses 70000", () => checkConfigError(wrongType("value", "port number", "the integer 70000", "define-value-70000.ts", "70000"), "value", "declare-port", "define-value-70000"));
  it("enum refuses other values", () =>
    checkConfigError(wrongType("value", 'one of "a", "b", "c"', 'the string "z"', "define-enum-z.ts", '"z"'), "value", "declare-enum", "define-enum-z"));
  it("path refuses the empty string", () => checkConfigError(wrongType("value", "path", 'the string ""', "define-path-empty.ts", '""'), "value", "declare-path", "define-path-empty"));
  // The element's path `value[definition 1, entry 2]' reads like a record key; definition 0, element 1 is meant.
  it("list elements are checked", () =>
    checkConfigError(wrongType("value[definition 1, entry 2]", "string", "the integer 3", "define-list-wrong-element.ts", "3"), "value", "declare-list-of-str", "define-list-wrong-element"));
});

describe("lines", () => {
  it("one definition", () => checkConfigOutput("hello", "value", "declare-lines", "define-value-hello"));
  it("definitions join with newlines, in module order", () => checkConfigOutput("hello\nworld", "value", "declare-lines", "define-value-hello", "define-value-world"));
  it("the other module order", () => checkConfigOutput("world\nhello", "value", "declare-lines", "define-value-world", "define-value-hello"));
});

describe("path", () => {
  it("a relative path is taken from the defining file", () => checkConfigOutput(path.join(fixtures, "data/file.txt"), "value", "declare-path", "define-path-relative"));
  it("from a file in another directory", () => checkConfigOutput(path.join(fixtures, "subdir/data/file.txt"), "value", "declare-path", "subdir/define-path-relative"));
  it("an absolute path is kept", () => checkConfigOutput("/etc/hosts", "value", "declare-path", "define-path-absolute"));
  it("the same file written two ways merges", () => checkConfigOutput(path.join(fixtures, "data/file.txt"), "value", "declare-path", "subdir/define-path-parent", "define-path-relative"));
  it("the same text from two directories conflicts, showing the resolved paths", () =>
    checkConfigError(
      msg("The option `value' has conflicting definition values:", "- In `<fixtures>/define-path-relative.ts': \"<fixtures>/data/file.txt\"", "- In `<fixtures>/subdir/define-path-relative.ts': \"<fixtures>/subdir/data/file.txt\"", conflictFix),
      "value", "declare-path", "define-path-relative", "subdir/define-path-relative"));
  it("a module not made with defineModule is taken to be in rootFile", async () => {
    const [declarePath] = await load(["declare-path"]);
    const evaluation = evaluateModules({ modules: [declarePath as ModuleInput, { value: "./plain.txt" }], rootFile: path.join(fixtures, "subdir/root.ts") });
    assert.equal(evaluation.resolve(["value"]), path.join(fixtures, "subdir/plain.txt"));
  });
});

describe("nullOr", () => {
  it("the default null", () => checkConfigOutput(null, "value", "declare-null-or-str"));
  it("null defined", () => checkConfigOutput(null, "value", "declare-null-or-str", "define-value-null"));
  it("a string", () => checkConfigOutput("hello", "value", "declare-null-or-str", "define-value-hello"));
  it("null and a string is an error", () =>
    checkConfigError(msg("The option `value' is defined both null and not null:", "- In `<fixtures>/define-value-null.ts': null", "- In `<fixtures>/define-value-hello.ts': \"hello\"", "Fix: use `mkForce(value)` on the one that should win."), "value", "declare-null-or-str", "define-value-null", "define-value-hello"));
});

describe("lists", () => {
  it("concatenate in module order", () => checkConfigOutput(["a", "b", "c"], "value", "declare-list-of-str", "define-list-a", "define-list-b"));
  it("the other module order", () => checkConfigOutput(["b", "c", "a"], "value", "declare-list-of-str", "define-list-b", "define-list-a"));
  it("mkIf on an element", () => checkConfigOutput(["kept"], "value", "declare-list-of-str", "define-list-element-if"));
  it("a module function's elements keep its place in module order", () =>
    checkConfigOutput(["x=3", "a"], "value", "declare-list-of-str", "declare-x", "define-x-3", "define-list-from-x", "define-list-a"));
});

describe("records", () => {
  it("merge per key", () => checkConfigOutput({ a: 1, b: 2 }, "value", "declare-attrs-of-int", "define-attrs-a", "define-attrs-b"));
  it("a key defined twice conflicts, naming the key", () =>
    checkConfigError(msg("The option `value.a' has conflicting definition values:", "- In `<fixtures>/define-attrs-a.ts': 1", "- In `<fixtures>/define-attrs-a-2.ts': 2", conflictFix), "value", "declare-attrs-of-int", "define-attrs-a", "define-attrs-a-2"));
  it("priorities apply per key", () => checkConfigOutput({ a: 3 }, "value", "declare-attrs-of-int", "define-attrs-a", "define-attrs-a-2", "define-attrs-a-force"));
  it("a key under mkIf(false) is absent", () => checkConfigOutput({ a: 1 }, "value", "declare-attrs-of-int", "define-attrs-a", "define-attrs-if-false"));
});

describe("submodules", () => {
  it("defaults only", () => checkConfigOutput({ enable: false, port: 22 }, "value", "declare-submodule"));
  it("definitions from two modules merge with the defaults", () => checkConfigOutput({ enable: true, port: 2222 }, "value", "declare-submodule", "define-submodule-enable", "define-submodule-port"));
  it("mkDefault inside beats the sub-option's default", () => checkConfigOutput({ enable: false, port: 8080 }, "value", "declare-submodule", "define-submodule-port-default"));
  it("a plain definition inside beats mkDefault", () => checkConfigOutput({ enable: false, port: 2222 }, "value", "declare-submodule", "define-submodule-port-default", "define-submodule-port"));
  it("mkForce inside beats a plain definition", () => checkConfigOutput({ enable: false, port: 443 }, "value", "declare-submodule", "define-submodule-port", "define-submodule-port-force"));
  it("mkForce on the whole value drops the other definitions", () => checkConfigOutput({ enable: true, port: 22 }, "value", "declare-submodule", "define-submodule-force-whole", "define-submodule-port"));
  it("a sub-option's type is checked", () =>
    checkConfigError(wrongType("value.port", "port number", "the integer 70000", "define-submodule-wrong-type.ts", "70000"), "value", "declare-submodule", "define-submodule-wrong-type"));
  it("an unknown sub-option, with Did you mean", () =>
    checkConfigError(msg("The option `value.prot' does not exist. Definition values:", "- In `<fixtures>/define-submodule-typo.ts': 2222", "Did you mean `value.port'?", "Fix: rename it, or declare it under `options' in a module."), "value", "declare-submodule", "define-submodule-typo"));
  it("records of submodules merge per name", () => checkConfigOutput({ alice: { enable: true, user: "alice" } }, "value", "declare-attrs-of-submodule", "define-attrs-sub-alice", "define-attrs-sub-alice-enable"));
  it("a sub-option without default or definition is used but not defined", () =>
    checkConfigError(notDefined("value.bob.user"), "value", "declare-attrs-of-submodule", "define-attrs-sub-alice", "define-attrs-sub-bob"));
});

describe("freeform submodules", () => {
  it("defaults only", () => checkConfigOutput({ name: "anonymous" }, "value", "declare-freeform"));
  it("undeclared names are kept next to declared options", () => checkConfigOutput({ name: "keel", extra: "x", more: "y" }, "value", "declare-freeform", "define-freeform-extra", "define-freeform-more", "define-freeform-name"));
  it("priorities apply to undeclared names", () => checkConfigOutput({ name: "anonymous", extra: "x" }, "value", "declare-freeform", "define-freeform-extra-default", "define-freeform-extra"));
  it("mkDefault alone", () => checkConfigOutput({ name: "anonymous", extra: "low" }, "value", "declare-freeform", "define-freeform-extra-default"));
  it("undeclared names are checked against the freeform type", () =>
    checkConfigError(wrongType("value.extra", "string", "the integer 1", "define-freeform-extra-int.ts", "1"), "value", "declare-freeform", "define-freeform-extra-int"));
});

describe("priorities", () => {
  it("the option default (1500)", () => checkConfigOutput(1500, "value", "declare-int-default"));
  it("mkDefault (1000) beats the option default", () => checkConfigOutput(1000, "value", "declare-int-default", "define-value-default"));
  it("a plain definition (100) beats mkDefault", () => checkConfigOutput(1, "value", "declare-int-default", "define-value-default", "define-value-1"));
  it("mkForce (50) beats a plain definition", () => checkConfigOutput(50, "value", "declare-int-default", "define-value-1", "define-value-force"));
  it("mkOverride(10) beats mkForce", () => checkConfigOutput(10, "value", "declare-int-default", "define-value-force", "define-value-override-10"));
  it("mkOverride(200) beats mkDefault", () => checkConfigOutput(200, "value", "declare-int-default", "define-value-override-200", "define-value-default"));
  it("mkOverride(200) loses to a plain definition", () => checkConfigOutput(1, "value", "declare-int-default", "define-value-override-200", "define-value-default", "define-value-1"));
  it("the lowest number wins whatever the module order", () =>
    checkConfigOutput(10, "value", "declare-int-default", "define-value-override-200", "define-value-force", "define-value-override-10", "define-value-default", "define-value-1"));
  it("mkOptionDefault alone", () => checkConfigOutput(1501, "value", "declare-int", "define-value-option-default"));
  it("mkOptionDefault conflicts with the declared default", () =>
    checkConfigError(msg("The option `value' has conflicting definition values:", "- In `<fixtures>/define-value-option-default.ts': 1501", "- In `<fixtures>/declare-int-default.ts': 1500", conflictFix), "value", "declare-int-default", "define-value-option-default"));
  it("lower priorities drop out before the conflict check", () =>
    checkConfigError(msg("The option `value' has conflicting definition values:", "- In `<fixtures>/define-value-1.ts': 1", "- In `<fixtures>/define-value-2.ts': 2", conflictFix), "value", "declare-int", "define-value-default", "define-value-1", "define-value-2"));
  // The hint suggests mkForce to values that already use it.
  it("two mkForce conflict", () =>
    checkConfigError(msg("The option `value' has conflicting definition values:", "- In `<fixtures>/define-value-force.ts': 50", "- In `<fixtures>/define-value-force-2.ts': 51", conflictFix), "value", "declare-int", "define-value-force", "define-value-force-2"));
  it("mkDefault on a list loses to a plain list", () => checkConfigOutput(["a"], "value", "declare-list-of-str", "define-list-default", "define-list-a"));
  it("mkDefault on a list alone", () => checkConfigOutput(["low"], "value", "declare-list-of-str", "define-list-default"));
});

describe("ordering", () => {
  it("mkBefore (500) first, mkAfter (1500) last", () => checkConfigOutput(["before", "a", "after"], "value", "declare-list-of-str", "define-list-after", "define-list-a", "define-list-before"));
  it("mkOrder numbers between them; equal orders keep module order", () =>
    checkConfigOutput(["before", "750", "a", "1000", "b", "c", "1250", "after"], "value", "declare-list-of-str", "define-list-order-1250", "define-list-order-750", "define-list-a", "define-list-order-1000", "define-list-b", "define-list-after", "define-list-before"));
  it("mkOrder(1000) is the plain order: module order decides", () => checkConfigOutput(["1000", "a"], "value", "declare-list-of-str", "define-list-order-1000", "define-list-a"));
});

describe("mkIf", () => {
  it("true", () => checkConfigOutput(3, "value", "declare-int", "define-if-true"));
  it("false leaves the option undefined", () => checkConfigError(notDefined("value"), "value", "declare-int", "define-if-false"));
  it("false does not conflict", () => checkConfigOutput(1, "value", "declare-int", "define-if-false", "define-value-1"));
  it("false: the content's type is never checked", () => checkConfigOutput(1, "value", "declare-int", "define-if-false-wrong-type", "define-value-1"));
  it("false: an unknown option in the content is still an error", () =>
    checkConfigError(msg("The option `valeu' does not exist. Definition values:", "- In `<fixtures>/define-if-false-unknown.ts': 1", "Did you mean `value'?", "Fix: rename it, or declare it under `options' in a module."), "value", "declare-int", "define-if-false-unknown", "define-value-1"));
  it("a non-boolean condition is an error", () =>
    checkConfigError(msg("mkIf was given the string \"yes\" as its condition for the option `value' in `<fixtures>/define-if-non-boolean.ts'.", "Fix: pass a boolean, e.g. mkIf(config.services.openssh.enable, …) or mkIf(x !== null, …)."), "value", "declare-int", "define-if-non-boolean"));
  it("on a module's whole config", () => checkConfigOutput(1, "value", "declare-int", "define-config-if-false", "define-value-1"));
  it("types.anything: one record definition is merged, its properties discharged", () =>
    checkConfigOutput({ a: 1, c: { d: 3 } }, "value", "declare-anything", "define-anything-properties"));
  it("types.anything: false content takes no part in the merge", () =>
    checkConfigOutput({ a: "one" }, "value", "declare-anything", "define-anything-if-false-conflict", "define-anything-a"));
  it("in a module that declares the option it tests: off", () => checkConfigOutput(0, "value", "declare-and-use"));
  it("in a module that declares the option it tests: on", () => checkConfigOutput(7, "value", "declare-and-use", "define-enable-true"));
  it("in a module that declares the option it tests: on, defined first", () => checkConfigOutput(7, "value", "define-enable-true", "declare-and-use"));
});

describe("mkMerge", () => {
  it("on a module's config, with mkIf inside", () => checkConfigOutput(["m1", "m3"], "value", "declare-list-of-str", "define-list-merge"));
  it("on one option, with mkBefore and mkIf inside", () => checkConfigOutput(["y", "x", "a"], "value", "declare-list-of-str", "define-list-merge-in-option", "define-list-a"));
});

describe("properties on a group of options are pushed down to each option", () => {
  it("a plain group", () => checkConfigOutput({ a: 2, b: "plain" }, "nested", "declare-nested", "define-nested-plain"));
  it("mkForce", () => checkConfigOutput({ a: 1, b: "forced" }, "nested", "declare-nested", "define-nested-plain", "define-nested-force"));
  it("mkDefault loses", () => checkConfigOutput({ a: 2, b: "plain" }, "nested", "declare-nested", "define-nested-plain", "define-nested-default"));
  it("mkDefault alone", () => checkConfigOutput({ a: 3, b: "default" }, "nested", "declare-nested", "define-nested-default"));
  it("mkIf(false)", () => checkConfigOutput({ a: 2, b: "plain" }, "nested", "declare-nested", "define-nested-plain", "define-nested-if-false"));
  it("mkIf(true) on part of the group", () => checkConfigOutput({ a: 3, b: "if true" }, "nested", "declare-nested", "define-nested-default", "define-nested-if-true"));
  it("mkForce on a module's whole config", () => checkConfigOutput({ value: 50, x: 50 }, "", "declare-int", "declare-x", "define-config-force", "define-value-1", "define-x-3"));
  it("a group set to a value is an error", () =>
    checkConfigError(msg("`nested' is a group of options, but `<fixtures>/define-nested-scalar.ts' sets it to the integer 5.", "- In `<fixtures>/define-nested-scalar.ts': 5", "Fix: set the options inside it instead; `keel options nested` lists them."), "nested", "declare-nested", "define-nested-scalar"));
});

describe("module functions and laziness", () => {
  it("a module function reads another option", () => checkConfigOutput(30, "value", "declare-int", "declare-x", "define-function-reads-x", "define-x-3"));
  it("whatever the module order", () => checkConfigOutput(30, "value", "declare-int", "define-function-reads-x", "define-x-3", "declare-x"));
  it("a chain of reads through modules in the wrong order", () => checkConfigOutput(8, "b", "declare-a-b", "declare-x", "define-b-from-a", "define-a-from-x", "define-x-3"));
  it("reading an option nobody defines", () => checkConfigError(notDefined("x"), "value", "declare-int", "declare-x", "define-function-reads-x"));
  it("a module function that reads config and has imports", () => checkConfigOutput(4, "value", "declare-int", "function-with-imports"));
  it("…declared after it", () => checkConfigOutput(4, "value", "function-with-imports", "declare-int"));
  it("a getter under `config'", () => checkConfigOutput(4, "value", "declare-int", "declare-x", "define-getter-in-config", "define-x-3"));
  it("a getter is not read unless its option is", () => checkConfigOutput(1, "a", "declare-int", "declare-x", "declare-a-b", "define-a-1", "define-getter-in-config"));
  it("a getter reads an option its own module defines", () => checkConfigOutput(6, "value", "declare-int", "declare-x", "define-x-and-value-getter-in-config"));
  it("reading an option the same module defines, eagerly, is infinite recursion", () =>
    checkConfigError(msg("Infinite recursion: `<fixtures>/define-x-and-value-eager.ts' defines the option `x', and its value was needed to compute that module's own definitions.", "Fix: read it in a getter (`get x() { return config.x; }`), which is evaluated only when needed, or move the definition of `x' to another module."), "value", "declare-int", "declare-x", "define-x-and-value-eager", "define-x-3"));
  it("…also when no other module defines it", () =>
    checkConfigError(msg("Infinite recursion: `<fixtures>/define-x-and-value-eager.ts' defines the option `x', and its value was needed to compute that module's own definitions.", "Fix: read it in a getter (`get x() { return config.x; }`), which is evaluated only when needed, or move the definition of `x' to another module."), "value", "declare-int", "declare-x", "define-x-and-value-eager"));
  it("a getter at the top level of a module function's result", () =>
    checkConfigOutput(4, "value", "declare-int", "declare-x", "define-getter", "define-x-3"));
  it("a top-level getter reads an option its own module defines", () =>
    checkConfigOutput(6, "value", "declare-int", "declare-x", "define-x-and-value-getter"));
  it("two module functions read the same option", () =>
    checkConfigOutput(30, "value", "declare-int", "declare-x", "declare-a-b", "define-function-reads-x", "define-a-from-x", "define-x-3"));
  it("…the other reader's value", () =>
    checkConfigOutput(4, "a", "declare-int", "declare-x", "declare-a-b", "define-function-reads-x", "define-a-from-x", "define-x-3"));
});

describe("cycles", () => {
  it("two options defined from each other in getters", () =>
    checkConfigError(msg("Infinite recursion: the option `a' depends on itself: `a' → `b' → `a'.", cycleFix), "a", "declare-a-b", "cycle-a-in-config", "cycle-b-in-config"));
  it("…read from the other end", () => checkConfigError(msg("Infinite recursion: the option `b' depends on itself: `b' → `a' → `b'.", cycleFix), "b", "declare-a-b", "cycle-a-in-config", "cycle-b-in-config"));
  it("an option defined from itself", () => checkConfigError(msg("Infinite recursion: the option `a' depends on itself: `a' → `a'.", cycleFix), "a", "declare-a-b", "cycle-self"));
  it("getters at the top level of module functions", () =>
    checkConfigError(msg("Infinite recursion: the option `a' depends on itself: `a' → `b' → `a'.", cycleFix), "a", "declare-a-b", "cycle-a", "cycle-b"));
  it("module functions that read each other's option eagerly", () =>
    checkConfigError(msg("Infinite recursion: `<fixtures>/cycle-eager-a.ts' reads the option `b' while its own definitions are computed, but the modules that may define `b' need them first: `<fixtures>/cycle-eager-b.ts' reads `a'.", "Fix: read one of these options in a getter (`get x() { return config.b; }`), which is evaluated only when needed."), "a", "declare-a-b", "cycle-eager-a", "cycle-eager-b"));
});

describe("imports", () => {
  it("a module imported twice is included once", () => checkConfigOutput(["a"], "value", "declare-list-of-str", "import-list-a-twice", "define-list-a"));
  it("a module function imported twice is included once", () => checkConfigOutput(["from a function"], "value", "declare-list-of-str", "import-function-twice", "define-list-function"));
  it("imports are transitive", () => checkConfigOutput(1, "value", "import-transitive"));
  it("…and included once with the modules they bring", () => checkConfigOutput(1, "value", "import-transitive", "import-declare-and-define", "declare-int", "define-value-1"));
  it("an undefined import is an error", () =>
    checkConfigError(msg("`<fixtures>/import-undefined.ts' imports undefined as imports[0], which is not a module.", "Fix: check the import statement, and that the imported file has `export default defineModule(…)`."), "value", "declare-int", "import-undefined"));
});

describe("declarations", () => {
  const redeclared = "Fix: declare it once, or let the second declaration only extend it: the same type (or a submodule with more options), without its own default, example or description.";
  it("an option declared twice, each with a description", () =>
    checkConfigError(
      msg(
        "The option `value' in `<fixtures>/declare-int-again.ts' is already declared in `<fixtures>/declare-int.ts': both give a description (the second declaration of an option extends it and leaves its description out).",
        redeclared,
      ),
      "value",
      "declare-int",
      "declare-int-again",
    ));
  it("an option declared again with the same type and no description merges, the default from either", () => checkConfigOutput(7, "value", "declare-int", "declare-int-extend"));
  it("an option declared again with a type that does not merge", () =>
    checkConfigError(msg("The option `value' in `<fixtures>/declare-value-str.ts' is already declared in `<fixtures>/declare-int.ts': their types do not merge: `integer' and `string'.", redeclared), "value", "declare-int", "declare-value-str"));
  it("two modules declaring options of one attrsOf submodule: each entry has both", () =>
    checkConfigOutput({ alice: { fullName: "Alice", home: "/home/alice" }, bob: { fullName: "nobody", home: "/home" } }, "people", "declare-users-name", "declare-users-home", "define-people"));
  it("a group where an option is declared", () =>
    checkConfigError(msg("`<fixtures>/declare-value-group.ts' declares options under `value', which `<fixtures>/declare-int.ts' declares as an option.", "Fix: choose another name for the group."), "value", "declare-int", "declare-value-group"));
  // The only message without a `Fix:' line.
  it("an option not made with mkOption", () =>
    checkConfigError(msg("`options.value' in `<fixtures>/declare-not-option.ts' is neither an option nor a record of options.", "Fix: declare each option with mkOption({ type, description, … }), grouped in records."), "value", "declare-not-option"));
  it("reading an option that is not declared", () => checkConfigError(msg("The option `nope' does not exist.", "Fix: check the spelling; `keel options` lists the options there."), "nope", "declare-int", "define-value-1"));
});

describe("module errors", () => {
  it("an unknown option, with Did you mean", () =>
    checkConfigError(msg("The option `valeu' does not exist. Definition values:", "- In `<fixtures>/define-typo.ts': 1", "Did you mean `value'?", "Fix: rename it, or declare it under `options' in a module."), "value", "declare-int", "define-typo", "define-value-1"));
  it("an unknown option with no close name", () =>
    checkConfigError(msg("The option `somethingElse' does not exist. Definition values:", "- In `<fixtures>/define-unknown.ts': 1", "Fix: remove it, or declare it under `options' in a module; `keel options` lists the options that exist."), "value", "declare-int", "define-unknown"));
  it("a module function reads an option that does not exist", () =>
    checkConfigError(msg("`<fixtures>/reads-typo.ts' reads `config.valeu', which is not an option.", "Did you mean `config.value'?", "Fix: check the spelling; `keel options` lists what exists."), "value", "declare-int", "reads-typo"));
  it("`config' next to top-level definitions", () =>
    checkConfigError(msg("The module in `<fixtures>/config-and-top-level.ts' has `options' or `config' and also definitions at its top level (x).", "Fix: move those definitions into `config`."), "value", "declare-int", "declare-x", "config-and-top-level"));
  it("a module function that returns nothing", () =>
    checkConfigError(msg("The module function in `<fixtures>/function-returns-nothing.ts' returned nothing.", "Fix: return a module, e.g. `({ config }) => ({ networking: { hostName: \"x\" } })`."), "value", "declare-int", "function-returns-nothing"));
  it("a module function that throws", () =>
    checkConfigError(msg("The module function in `<fixtures>/function-throws.ts' threw: boom", "Thrown at <fixtures>/function-throws.ts:4:9.", "Fix: correct the module at that line; --debug shows the whole stack."), "value", "declare-int", "function-throws"));
});

describe("systems: assertions, warnings and the built-in modules", () => {
  it("a holding assertion", () => checkSystemOutput([], "packages", "assert-holds"));
  it("a failed assertion", () => checkSystemError(msg("The system `test' fails an assertion:", "- The fixture's assertion failed. Fix: nothing, it always fails."), "assert-fails"));
  it("two failed assertions", () => checkSystemError(msg("The system `test' fails 2 assertions:", "- The fixture's assertion failed. Fix: nothing, it always fails.", "- A second failed assertion."), "assert-fails", "assert-fails-2"));
  it("a system without a root file system fails an assertion", () =>
    assertConfigError(
      msg("The system `test' fails an assertion:", "- `fileSystems' does not say where the root file system is. Add fileSystems.\"/\" = { device: \"/dev/vda\", fsType: \"ext4\" } (or your machine's device)."),
      () => system([], []),
    ));
  it("an assertion computed from config fails", () => checkSystemError(msg("The system `test' fails an assertion:", "- The host name is \"test\"; it must be \"web\"."), "assert-hostname"));
  it("an assertion computed from config holds", () => checkSystemOutput("web", "networking.hostName", "assert-hostname", "define-hostname-web"));
  it("failed assertions are listed in module order", () =>
    checkSystemError(msg("The system `test' fails 2 assertions:", "- The host name is \"test\"; it must be \"web\".", "- The fixture's assertion failed. Fix: nothing, it always fails."), "assert-hostname", "assert-fails"));
  it("a user name that would escape its directory, or that useradd refuses, fails an assertion", () =>
    checkSystemError(
      msg("The system `test' fails an assertion:", '- users: "../evil" is not a valid user or group name. Use lower-case letters, digits, _ and -, starting with a letter or _. (`users.users."../evil"\' is set in `<fixtures>/bad-names.ts\')'),
      "bad-names",
    ));
  it("warnings", async () => assert.deepEqual(system(await load(["warn"])).warnings, ["The fixture warns."]));
  it("the host name defaults to the system's name", () => checkSystemOutput("test", "networking.hostName", "define-package"));
  it("openssh off: no package", () => checkSystemOutput(["htop"], "packages", "define-package"));
  it("openssh off: no service but keel's own, which grow the root partition and guard a trial boot, and Debian's resolved, e2scrub_reap and systemd-bless-boot changed", async () =>
    assert.deepEqual(Object.keys(system(await load(["define-package"])).config.systemd.services), ["systemd-resolved", "e2scrub_reap", "keel-grow-root", "systemd-bless-boot", "keel-trial"]));
  it("openssh on: its package", () => checkSystemOutput(["openssh-server"], "packages", "enable-openssh"));
  it("openssh on: its package comes in module order", () =>
    checkSystemOutput(["openssh-server", "htop"], "packages", "enable-openssh", "define-package"));
  it("openssh on: its service", () =>
    checkSystemOutput(
      { enable: true, description: "", wantedBy: ["multi-user.target"], after: [], before: [], dropBefore: [], dropAfter: ["network.target"], wants: [], requires: [], environment: {}, script: null, serviceConfig: { ExecStartPre: "" }, unitConfig: {} },
      "systemd.services.ssh",
      "enable-openssh",
    ));
  it("openssh on: host keys are made on first boot, before sshd starts", () =>
    checkSystemOutput({ enable: true, description: "Generate SSH host keys", wantedBy: ["ssh.service"], after: ["local-fs.target", "systemd-tmpfiles-setup.service"], before: ["ssh.service", "shutdown.target"], dropBefore: [], dropAfter: [], wants: [], requires: [], environment: {}, script: 'key=/etc/ssh/ssh_host_ed25519_key\nif ! ssh-keygen -l -f "$key" >/dev/null 2>&1; then\n  made=$(mktemp -d)\n  ssh-keygen -q -t ed25519 -N "" -C "" -f "$made/key"\n  cat "$made/key" > "$key" && chmod 600 "$key"\n  cat "$made/key.pub" > "$key.pub" && chmod 644 "$key.pub"\n  rm -rf "$made"\n  sync "$key" "$key.pub"\nfi', serviceConfig: { Type: "oneshot" }, unitConfig: { DefaultDependencies: false, Conflicts: "shutdown.target" } }, "systemd.services.ssh-keygen", "enable-openssh"));
  it("openssh settings: declared and freeform", () =>
    checkSystemOutput({ PermitRootLogin: "no", X11Forwarding: false, PasswordAuthentication: false, KbdInteractiveAuthentication: false, AuthorizedKeysFile: null, HostKey: "/etc/ssh/ssh_host_ed25519_key" }, "services.openssh.settings", "enable-openssh", "openssh-settings"));
  it("openssh settings reach sshd_config, in environment.etc", async () =>
    assert.deepEqual(system(await load(["enable-openssh", "openssh-settings"])).config.environment.etc["ssh/sshd_config.d/keel.conf"], {
      text: "Port 2222\nX11Forwarding no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nHostKey /etc/ssh/ssh_host_ed25519_key\nPermitRootLogin no\nAuthorizedKeysFile .ssh/authorized_keys /etc/ssh/authorized_keys.d/%u\n",
      source: null,
      mode: "0644",
    }));
  it("a module adds a package when openssh is on", () =>
    checkSystemOutput(["openssh-server", "openssh-client"], "packages", "enable-openssh", "openssh-client"));
  it("an assertion on services.openssh.enable", () =>
    checkSystemError(msg("The system `test' fails an assertion:", "- This system needs services.openssh.enable = true."), "assert-openssh"));
});
