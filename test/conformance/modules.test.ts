// nixpkgs' own module-system tests, lib/tests/modules.sh, translated to keel:
// each check names the modules.sh line it comes from (nixpkgs lib 26.11, the
// master of 2026-06-11) and keeps its fixtures' facts and its expectation —
// a value, or an error that says the same thing in keel's words. The fixtures
// are written here in TypeScript, one per .nix file, named after it. The groups
// keel does not have yet are listed at the end with the reason (issue 15).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { defineModule, mkAfter, mkAliasOptionModule, mkBefore, mkDefault, mkForce, mkIf, mkMerge, mkOption, mkRenamedOptionModule, types } from "../../src/index.ts";
import type { ModuleInput } from "../../src/config/module.ts";
import { evaluateModules } from "../../src/config/modules.ts";

/** A fixture: `module` as if written in `<name>.nix`'s place (error messages name the file). A function is wrapped: defineModule named this file. */
function fixture<M extends object>(name: string, module: M): M {
  const named = (typeof module === "function" ? (args: unknown) => (module as (args: unknown) => unknown)(args) : module) as M;
  Object.defineProperty(named, Symbol.for("keel.moduleFile"), { value: `${name}.ts`, enumerable: false });
  return named;
}

/** The value of `attr` (`config.` dropped) when `modules` are evaluated together, with evalModules' `class` if given. */
function evaluate(attr: string, modules: readonly ModuleInput[], cls?: string): unknown {
  const path = attr.replace(/^config\.?/, "");
  return evaluateModules({ modules, rootFile: "modules.sh", ...(cls === undefined ? {} : { class: cls }) }).resolve(path === "" ? [] : path.split("."));
}

/** Every check of modules.sh: its line, kind and feature group (the catalog the translation follows). */
const catalog = (JSON.parse(readFileSync(new URL("modules-sh.json", import.meta.url), "utf8")) as { checks: { line: number; kind: "output" | "error"; group: string }[] }).checks;

/** The modules.sh lines translated below. */
const translated = new Set<number>();

function translating(line: number, kind: "output" | "error"): void {
  const entry = catalog.find((c) => c.line === line);
  assert.ok(entry !== undefined, `modules.sh has no check at line ${line}`);
  assert.equal(entry.kind, kind, `modules.sh:${line} is a ${entry.kind} check`);
  translated.add(line);
}

/** modules.sh's checkConfigOutput: the value, as JSON, matches. */
function checkConfigOutput(line: number, expected: unknown, attr: string, ...modules: ModuleInput[]): void {
  translating(line, "output");
  it(`modules.sh:${line} ${attr} = ${JSON.stringify(expected)}`, () => assert.deepEqual(evaluate(attr, modules), expected));
}

/** checkConfigOutput of a `lib.evalModules { class; modules; }` the fixture makes: its `config.<attr>`. */
function checkEvalModulesOutput(line: number, expected: unknown, cls: string, attr: string, ...modules: ModuleInput[]): void {
  translating(line, "output");
  it(`modules.sh:${line} evalModules { class = "${cls}"; }.${attr} = ${JSON.stringify(expected)}`, () => assert.deepEqual(evaluate(attr, modules, cls), expected));
}

/** checkConfigError of a `lib.evalModules { class; modules; }` the fixture makes. */
function checkEvalModulesError(line: number, pattern: RegExp, cls: string, attr: string, ...modules: ModuleInput[]): void {
  translating(line, "error");
  it(`modules.sh:${line} evalModules { class = "${cls}"; }.${attr} fails: ${pattern.source}`, () => assert.throws(() => evaluate(attr, modules, cls), pattern));
}

/** modules.sh's checkConfigError: evaluating `attr` fails with an error matching `pattern`. */
function checkConfigError(line: number, pattern: RegExp, attr: string, ...modules: ModuleInput[]): void {
  translating(line, "error");
  it(`modules.sh:${line} ${attr} fails: ${pattern.source}`, () => assert.throws(() => evaluate(attr, modules), pattern));
}

const value = (type: Parameters<typeof mkOption>[0]["type"], more: { default?: unknown } = {}) => ({ options: { value: mkOption({ type, description: "A value.", ...more }) } });
const declareIntUnsigned = fixture("declare-int-unsigned-value", value(types.ints.unsigned));
const declareIntPositive = fixture("declare-int-positive-value", value(types.ints.positive));
const declareIntBetween = fixture("declare-int-between-value", value(types.ints.between(-21, 43)));
const defineValueIntPositive = fixture("define-value-int-positive", { value: 42 });
const defineValueIntNegative = fixture("define-value-int-negative", { value: -23 });
const defineValueIntZero = fixture("define-value-int-zero", { value: 0 });
const defineValueString = fixture("define-value-string", { value: "24" });
const defineValueList = fixture("define-value-list", { value: [] });

/** Fixtures several groups of modules.sh use. */
const declareEnable = fixture("declare-enable", { options: { enable: mkOption({ type: types.bool, default: false, example: true, description: "Some descriptive text" }) } });
const defineEnable = fixture("define-enable", { enable: true } as ModuleInput);
const declareAttrsOfSub = fixture("declare-attrsOfSub-any-enable", {
  options: { attrsOfSub: mkOption({ type: types.attrsOf(types.submodule({ enable: mkOption({ type: types.bool, default: false, example: true, description: "Some descriptive text" }) })), default: {}, example: {}, description: "Some descriptive text" }) },
});

describe("types.ints", () => {
  checkConfigOutput(297, 42, "config.value", declareIntUnsigned, defineValueIntPositive);
  checkConfigError(298, /A definition for option `value' is not of type `unsigned integer': it is .*\n- In `define-value-int-negative\.ts': -23/, "config.value", declareIntUnsigned, defineValueIntNegative);
  checkConfigError(300, /A definition for option `value' is not of type `positive integer': it is .*\n- In `define-value-int-zero\.ts': 0/, "config.value", declareIntPositive, defineValueIntZero);
  checkConfigOutput(302, 42, "config.value", declareIntBetween, defineValueIntPositive);
  checkConfigError(303, /is not of type `integer between -21 and 43 \(both inclusive\)'.*\n- In `define-value-int-negative\.ts': -23/, "config.value", declareIntBetween, defineValueIntNegative);
  checkConfigError(519, /A definition for option `value' is not of type `unsigned integer'/, "config.value", declareIntUnsigned, defineValueList, defineValueIntPositive);
});

describe("types.either, types.oneOf", () => {
  const declareEither = fixture("declare-either", value(types.either(types.int, types.str)));
  const declareOneOf = fixture("declare-oneOf", value(types.oneOf([types.int, types.listOf(types.int), types.str])));
  checkConfigOutput(307, 42, "config.value", declareEither, defineValueIntPositive);
  checkConfigOutput(308, "24", "config.value", declareEither, defineValueString);
  checkConfigOutput(310, 42, "config.value", declareOneOf, defineValueIntPositive);
  checkConfigOutput(311, [], "config.value", declareOneOf, defineValueList);
  checkConfigOutput(312, "24", "config.value", declareOneOf, defineValueString);
});

describe("types.coercedTo", () => {
  const declareCoerced = fixture("declare-coerced-value", value(types.coercedTo(types.int, String, types.str), { default: 42 }));
  const declareCoercedNoDefault = fixture("declare-coerced-value-no-default", value(types.coercedTo(types.int, String, types.str)));
  // lib.toInt: a string of digits as an integer, or an error.
  const toInt = (s: string): number => {
    if (!/^\s*-?\d+\s*$/.test(s)) throw new Error(`toInt: Could not convert ${JSON.stringify(s)} to int.`);
    return Number(s);
  };
  const declareUnsound = fixture("declare-coerced-value-unsound", value(types.coercedTo(types.str, toInt, types.ints.s8), { default: "12" }));
  checkConfigOutput(395, "42", "config.value", declareCoerced);
  checkConfigOutput(396, "24", "config.value", declareCoerced, defineValueString);
  checkConfigError(397, /A definition for option `value' is not of type `string or integer convertible to it': it is .*\n- In `define-value-list\.ts': \[\]/, "config.value", declareCoerced, defineValueList);
  // coercedTo does not merge with another coercedTo (its functor has no binOp): declaring it twice is refused, naming both files.
  checkConfigError(400, /The option `value' in `declare-coerced-value-no-default\.ts' is already declared in `declare-coerced-value\.ts'/, "config.value", declareCoerced, declareCoercedNoDefault);
  checkConfigOutput(403, 12, "config.value", declareUnsound);
  checkConfigError(404, /A definition for option `value' is not of type `8 bit signed integer; between -128 and 127 \(both inclusive\)'.*\n- In `define-value-string-bigint\.ts': "1000"/, "config.value", declareUnsound, fixture("define-value-string-bigint", { value: "1000" }));
  checkConfigError(405, /toInt: Could not convert .* to int/, "config.value", declareUnsound, fixture("define-value-string-arbitrary", { value: "foobar" }));
});

describe("types.nonEmptyListOf", () => {
  const bad = fixture("error-nonEmptyListOf-submodule", { options: { bad: mkOption({ type: types.nonEmptyListOf(types.submodule({})), default: [], description: "Bad." }) } });
  checkConfigError(212, /A definition for option `bad' is not of type `non-empty \(list of submodule\)'/, "config.bad", bad);
});

describe("types.unique", () => {
  const message = "We require a single definition, because seeing the whole value at once helps us maintain critical invariants of our system.";
  const typesUnique = fixture("types-unique", {
    options: { examples: mkOption({ type: types.lazyAttrsOf(types.unique({ message }, types.attrsOf(types.str))), description: "Examples." }) },
    imports: [{ examples: { merged: { b: "bee" } } }, { examples: { override: mkForce({ b: "bee" }) } }],
    config: { examples: { merged: { a: "aye" }, override: { a: "aye" }, badLazyType: { a: true } } },
  });
  checkConfigError(644, /The option `examples\.merged' is defined multiple times while it's expected to be unique/, "config.examples.merged.a", typesUnique);
  checkConfigError(646, new RegExp(message.replaceAll(".", "\\.")), "config.examples.merged.a", typesUnique);
  checkConfigError(648, /A definition for option `examples\.badLazyType\.a' is not of type `string'/, "config.examples.badLazyType.a", typesUnique);
  checkConfigOutput(650, "bee", "config.examples.override.b", typesUnique);
});

describe("types.attrsOf and types.lazyAttrsOf", () => {
  const declareAttrsOf = fixture("declare-attrsOf", value(types.attrsOf(types.str), { default: {} }));
  const declareLazyAttrsOf = fixture("declare-lazyAttrsOf", value(types.lazyAttrsOf(types.str), { default: {} }));
  // `options.isLazy = mkOption { default = !config.value ? foo; }` is defined here by a getter: keel's option defaults cannot read config yet.
  const readsFoo = (file: string, option: string, value: object) =>
    fixture(file, ({ config }: { config: { value: object } }) => ({
      options: { [option]: mkOption({ type: types.bool, description: "Whether config.value lacks foo." }) },
      config: {
        get [option]() {
          return !("foo" in config.value);
        },
        value,
      },
    }));
  const lazyCheck = readsFoo("attrsOf-lazy-check", "isLazy", {
    get bar(): string {
      throw new Error("is not lazy");
    },
  });
  const conditionalCheck = readsFoo("attrsOf-conditional-check", "conditionalWorks", { foo: mkIf(false, "should not be defined") });
  checkConfigError(503, /is not lazy/, "config.isLazy", declareAttrsOf, lazyCheck);
  checkConfigOutput(504, true, "config.isLazy", declareLazyAttrsOf, lazyCheck);
  checkConfigOutput(505, true, "config.conditionalWorks", declareAttrsOf, conditionalCheck);
  checkConfigOutput(506, false, "config.conditionalWorks", declareLazyAttrsOf, conditionalCheck);
});

describe("types.attrTag", () => {
  const leftRight = () => types.attrTag({ left: mkOption({ type: types.int, description: "Left." }), right: mkOption({ type: types.str, description: "Right." }) });
  const doNotEval = (): never => {
    throw new Error("do not eval");
  };
  const typesAttrTag = fixture("types-attrTag", {
    options: {
      intStrings: mkOption({ type: types.attrsOf(leftRight()), description: "Tagged." }),
      nested: mkOption({ type: types.attrTag({ left: mkOption({ type: types.int, description: "Left." }), right: mkOption({ type: leftRight(), description: "Right." }) }), description: "Nested." }),
    },
    config: {
      intStrings: {
        syntaxError: 1,
        syntaxError2: {},
        syntaxError3: { a: true, b: true },
        syntaxError4: mkMerge([{ a: true }, { b: true }]),
        mergeError: mkMerge([{ get int() { return doNotEval(); } }, { get string() { return doNotEval(); } }]),
        badTagError: { get rite() { return doNotEval(); } },
        badTagTypeError: { left: "bad" },
        numberOne: { left: 1 },
        hello: { right: "hello world" },
      },
      nested: { right: { left: "not a number" } },
    },
  } as ModuleInput);
  const union = "is not of type `attribute-tagged union with choices: left, right'";
  for (const [line, name] of [[216, "syntaxError"], [217, "syntaxError2"], [218, "syntaxError3"], [219, "syntaxError4"], [220, "mergeError"], [221, "badTagError"]] as const) {
    checkConfigError(line, new RegExp(`A definition for option \`intStrings\\.${name}' ${union.replace(/[()`']/g, "\\$&")}`), `config.intStrings.${name}`, typesAttrTag);
  }
  checkConfigError(222, /A definition for option `intStrings\.badTagTypeError\.left' is not of type `integer'/, "config.intStrings.badTagTypeError.left", typesAttrTag);
  checkConfigError(223, /A definition for option `nested\.right\.left' is not of type `integer'/, "config.nested.right.left", typesAttrTag);
  // okChecks' assertions, each read alone: the other entries' errors are not forced.
  checkConfigOutput(215, { left: 1 }, "config.intStrings.numberOne", typesAttrTag);
  checkConfigOutput(215, { right: "hello world" }, "config.intStrings.hello", typesAttrTag);
});

describe("did you mean, and mkOption in config", () => {
  const bool = (more: { default?: boolean } = { default: false }) => mkOption({ type: types.bool, ...more });
  checkConfigError(842, /Did you mean `set\.enable'\?/, "config.set", fixture("error-typo-nested", { options: { set: { enable: bool() } }, config: { set: { ena: true } } } as ModuleInput));
  checkConfigError(843, /Did you mean `set'\?/, "config", fixture("error-typo-outside-with-nested", { options: { set: { enable: bool() } }, config: { sea: { enable: true } } } as ModuleInput));
  checkConfigError(844, /Did you mean `bar', `baz' or `foo'\?/, "config", fixture("error-typo-multiple-suggestions", { options: { foo: bool(), bar: bool(), baz: bool() }, config: { far: true } } as ModuleInput));
  const ten = "abcdefghij".split("");
  const generated = Object.fromEntries(ten.flatMap((a) => ten.flatMap((b) => ten.map((c) => [`${a}${b}${c}`, bool()]))));
  checkConfigError(845, /Did you mean `enable', `ebe' or `enabled'\?/, "config", fixture("error-typo-large-attrset", { options: { ...generated, enable: bool(), enabled: bool(), disable: bool() }, config: { enble: true } } as ModuleInput));
  // NixOS also offers `enable' (6 edits from `prot'): keel offers only names within a few edits or that the typo begins.
  checkConfigError(
    846,
    /Did you mean `services\.myservice\.port'\?/,
    "config.services.myservice",
    fixture("error-typo-submodule", {
      options: { services: mkOption({ type: types.attrsOf(types.submodule({ enable: bool(), port: mkOption({ type: types.int, default: 8080 }) })), default: {} }) },
      config: { services: { myservice: { prot: 9000 } } },
    } as ModuleInput),
  );
  checkConfigError(
    847,
    // NixOS also offers `certificateKey' (4 edits): keel's limit for a 10-letter name is 3.
    /Did you mean `services\.nginx\.virtualHosts\."example\.com"\.ssl\.certificate'\?/,
    // modules.sh reads `virtualHosts."example.com"'; the error is the same one level up.
    "config.services.nginx",
    fixture("error-typo-deeply-nested", {
      options: {
        services: {
          nginx: {
            enable: bool(),
            virtualHosts: mkOption({
              type: types.attrsOf(types.submodule({ enableSSL: bool(), ssl: { certificate: mkOption({ type: types.str, default: "" }), certificateKey: mkOption({ type: types.str, default: "" }) } })),
              default: {},
            }),
          },
        },
      },
      config: { services: { nginx: { virtualHosts: { "example.com": { ssl: { certficate: "/path/to/cert" } } } } } },
    } as ModuleInput),
  );
  const inConfig = fixture("error-mkOption-in-config", { wrong1: mkOption({ type: types.bool }), nest: { wrong2: mkOption({ type: types.bool }) } } as ModuleInput);
  checkConfigError(207, /It seems as if you're trying to declare an option by placing it into `config' rather than `options'!/, "config.wrong1", inConfig);
  checkConfigError(209, /It seems as if you're trying to declare an option by placing it into `config' rather than `options'!/, "config.nest.wrong2", fixture("error-mkOption-in-config-nested", { nest: { wrong2: mkOption({ type: types.bool }) } } as ModuleInput));
});

describe("mkIf at every level, into an attrsOf submodule", () => {
  type Enable = { enable: boolean };
  const reads = (name: string, body: (config: Enable) => unknown) => fixture(name, defineModule(({ config }) => body(config as unknown as Enable) as never));
  const ifTop = reads("define-if-attrsOfSub-foo-enable", (config) => mkIf(config.enable, { attrsOfSub: { foo: { enable: true } } }));
  const ifSub = reads("define-attrsOfSub-if-foo-enable", (config) => ({ attrsOfSub: mkIf(config.enable, { foo: { enable: true } }) }));
  const ifFoo = reads("define-attrsOfSub-foo-if-enable", (config) => ({ attrsOfSub: { foo: mkIf(config.enable, { enable: true }) } }));
  const ifValue = reads("define-attrsOfSub-foo-enable-if", (config) => ({ attrsOfSub: { foo: { enable: mkIf(config.enable, true) } } }));
  const missing = /The value of `attrsOfSub' has no `attrsOfSub\.foo'/;
  checkConfigError(341, missing, "config.attrsOfSub.foo.enable", declareEnable, declareAttrsOfSub);
  checkConfigError(343, missing, "config.attrsOfSub.foo.enable", declareEnable, declareAttrsOfSub, ifTop);
  checkConfigError(344, missing, "config.attrsOfSub.foo.enable", declareEnable, declareAttrsOfSub, ifSub);
  checkConfigError(345, missing, "config.attrsOfSub.foo.enable", declareEnable, declareAttrsOfSub, ifFoo);
  checkConfigOutput(346, false, "config.attrsOfSub.foo.enable", declareEnable, declareAttrsOfSub, ifValue);
  checkConfigOutput(347, true, "config.attrsOfSub.foo.enable", declareEnable, declareAttrsOfSub, defineEnable, ifTop);
  checkConfigOutput(348, true, "config.attrsOfSub.foo.enable", declareEnable, declareAttrsOfSub, defineEnable, ifSub);
  checkConfigOutput(349, true, "config.attrsOfSub.foo.enable", declareEnable, declareAttrsOfSub, defineEnable, ifFoo);
  checkConfigOutput(350, true, "config.attrsOfSub.foo.enable", declareEnable, declareAttrsOfSub, defineEnable, ifValue);
  checkConfigOutput(708, true, "config.enable", declareEnable, fixture("define-enable-with-top-level-mkIf", { imports: [mkIf(true, { enable: true })] } as ModuleInput));
  checkConfigError(274, /The option `enable' does not exist\. Definition values:\n- In `define-enable\.ts': true/, "config.enable", defineEnable);
});

describe("mkForce at every level, into an attrsOf submodule", () => {
  const m = (name: string, module: object) => fixture(name, module as ModuleInput);
  const foo = m("define-attrsOfSub-foo", { attrsOfSub: { foo: {} } });
  const fooEnable = m("define-attrsOfSub-foo-enable", { attrsOfSub: { foo: { enable: true } } });
  const forceTop = m("define-force-attrsOfSub-foo-enable", mkForce({ attrsOfSub: { foo: { enable: false } } }));
  const forceSub = m("define-attrsOfSub-force-foo-enable", { attrsOfSub: mkForce({ foo: { enable: false } }) });
  const forceFoo = m("define-attrsOfSub-foo-force-enable", { attrsOfSub: { foo: mkForce({ enable: false }) } });
  const forceValue = m("define-attrsOfSub-foo-enable-force", { attrsOfSub: { foo: { enable: mkForce(false) } } });
  const bar = m("define-attrsOfSub-bar", { attrsOfSub: { bar: {} } });
  const barEnable = m("define-attrsOfSub-bar-enable", { attrsOfSub: { bar: { enable: true } } });
  const noFoo = /The value of `attrsOfSub' has no `attrsOfSub\.foo'/;
  const noBar = /The value of `attrsOfSub' has no `attrsOfSub\.bar'/;
  checkConfigOutput(316, true, "config.enable", declareEnable, defineEnable);
  checkConfigOutput(317, false, "config.enable", declareEnable, defineEnable, m("define-force-enable", mkForce({ enable: false })));
  checkConfigOutput(318, false, "config.enable", declareEnable, defineEnable, m("define-enable-force", { enable: mkForce(false) }));
  checkConfigError(321, noFoo, "config.attrsOfSub.foo.enable", declareAttrsOfSub);
  checkConfigOutput(322, false, "config.attrsOfSub.foo.enable", declareAttrsOfSub, foo);
  checkConfigOutput(324, true, "config.attrsOfSub.foo.enable", declareAttrsOfSub, fooEnable);
  checkConfigOutput(325, false, "config.attrsOfSub.foo.enable", declareAttrsOfSub, fooEnable, forceTop);
  checkConfigOutput(326, false, "config.attrsOfSub.foo.enable", declareAttrsOfSub, fooEnable, forceSub);
  checkConfigOutput(327, false, "config.attrsOfSub.foo.enable", declareAttrsOfSub, fooEnable, forceFoo);
  checkConfigOutput(328, false, "config.attrsOfSub.foo.enable", declareAttrsOfSub, fooEnable, forceValue);
  checkConfigError(331, noBar, "config.attrsOfSub.bar.enable", declareAttrsOfSub, foo);
  checkConfigOutput(332, false, "config.attrsOfSub.bar.enable", declareAttrsOfSub, foo, bar);
  checkConfigOutput(334, true, "config.attrsOfSub.bar.enable", declareAttrsOfSub, foo, barEnable);
  // A forced attrsOfSub (or a forced definition of the whole config) drops bar; a forced foo or foo.enable does not.
  checkConfigError(335, noBar, "config.attrsOfSub.bar.enable", declareAttrsOfSub, foo, barEnable, forceTop);
  checkConfigError(336, noBar, "config.attrsOfSub.bar.enable", declareAttrsOfSub, foo, barEnable, forceSub);
  checkConfigOutput(337, true, "config.attrsOfSub.bar.enable", declareAttrsOfSub, foo, barEnable, forceFoo);
  checkConfigOutput(338, true, "config.attrsOfSub.bar.enable", declareAttrsOfSub, foo, barEnable, forceValue);
});

describe("types.anything", () => {
  const anything = (name: string, config: unknown) => fixture(name, { options: { value: mkOption({ type: types.anything, description: "Anything." }) }, config } as ModuleInput);
  const nested = anything("types-anything/nested-attrs", mkMerge([{ value: { foo: null } }, { value: { l1: { foo: null } } }, { value: { l1: { l2: { foo: null } } } }, { value: { l1: { l2: { l3: { foo: null } } } } }]));
  checkConfigOutput(576, null, "config.value.foo", nested);
  checkConfigOutput(577, null, "config.value.l1.foo", nested);
  checkConfigOutput(578, null, "config.value.l1.l2.foo", nested);
  checkConfigOutput(579, null, "config.value.l1.l2.l3.foo", nested);
  checkConfigError(583, /The option `value' has conflicting definition values/, "config.value", anything("types-anything/lists", mkMerge([{ value: ["a value"] }, { value: ["another value"] }])));
  // Nix's path `./.` is a string here.
  const atoms = { int: 0, bool: false, string: "", path: "/keel/test", null: null, float: 0.1, list: [1, "a", { x: null }] };
  const equal = anything("types-anything/equal-atoms", mkMerge([{ value: atoms }, { value: structuredClone(atoms) }]));
  for (const [line, key, expected] of [[585, "int", 0], [586, "bool", false], [587, "string", ""], [588, "path", "/keel/test"], [589, "null", null], [590, "float", 0.1], [591, "list", [1, "a", { x: null }]]] as const) {
    checkConfigOutput(line, expected, `config.value.${key}`, equal);
  }
  const mods = anything(
    "types-anything/mk-mods",
    mkMerge([
      { value: { mkiffalse: mkIf(false, {}) } },
      { value: { mkiftrue: mkIf(true, {}) } },
      { value: { mkdefault: mkDefault(0) } },
      { value: { mkdefault: 1 } },
      { value: { mkmerge: mkMerge([{}]) } },
      { value: { mkbefore: mkBefore(true) } },
      { value: { nested: mkMerge([{ foo: mkDefault(0), bar: mkIf(false, 0) }, mkIf(true, { foo: mkIf(true, mkForce(1)), bar: { baz: mkDefault("baz") } })]) } },
    ]),
  );
  checkConfigError(598, /The value of `value' has no `value\.mkiffalse'/, "config.value.mkiffalse", mods);
  checkConfigOutput(599, {}, "config.value.mkiftrue", mods);
  checkConfigOutput(600, 1, "config.value.mkdefault", mods);
  checkConfigOutput(601, {}, "config.value.mkmerge", mods);
  checkConfigOutput(602, true, "config.value.mkbefore", mods);
  checkConfigOutput(603, 1, "config.value.nested.foo", mods);
  checkConfigOutput(604, "baz", "config.value.nested.bar.baz", mods);
});

describe("mkAliasOptionModule, mkRenamedOptionModule (doRename)", () => {
  const enable = { enable: mkOption({ type: types.nullOr(types.bool), default: null, example: true, description: "Some descriptive text" }) };
  const aliasWith = (name: string, alias: unknown) =>
    fixture(name, { options: enable, imports: [mkAliasOptionModule(["enableAlias"], ["enable"]), { enableAlias: alias }, { enable: true }] } as ModuleInput);
  const lowAlias = aliasWith("alias-with-priority", mkDefault(false));
  const forcedAlias = aliasWith("alias-with-priority-can-override", mkForce(false));
  checkConfigOutput(411, true, "config.enable", lowAlias);
  checkConfigOutput(412, true, "config.enableAlias", lowAlias);
  checkConfigOutput(413, false, "config.enable", forcedAlias);
  checkConfigOutput(414, false, "config.enableAlias", forcedAlias);
  const renamed = (name: string) =>
    fixture(name, { imports: [mkRenamedOptionModule(["a", "b"], ["c", "d", "e"])], options: { c: { d: { e: mkOption({ type: types.anything, description: "E." }) } } }, config: { a: { b: 1234 } } } as ModuleInput);
  checkConfigOutput(714, 1234, "config.c.d.e", renamed("doRename-basic"));
  translating(716, "output");
  it("modules.sh:716 the rename's warning names the old option, the file and the new one (keel keeps it with the system's warnings)", () => {
    const evaluation = evaluateModules({ modules: [renamed("doRename-warnings")], rootFile: "modules.sh" });
    assert.deepEqual([...evaluation.warnings], ["The option `a.b' defined in `doRename-warnings.ts' has been renamed to `c.d.e'."]);
  });
});

describe("disabledModules", () => {
  const m = (name: string, module: object) => fixture(name, module as ModuleInput);
  const notDeclared = /The option `enable' does not exist\. Definition values:\n- In `define-enable\.ts': true/;
  const notThere = /The option `enable' does not exist\./;
  checkConfigOutput(362, true, "config.enable", defineEnable, declareEnable);
  checkConfigOutput(363, false, "config.enable", defineEnable, declareEnable, m("disable-define-enable", { disabledModules: [defineEnable] }));
  checkConfigOutput(364, false, "config.enable", defineEnable, declareEnable, m("disable-define-enable-string-path", { disabledModules: ["define-enable.ts"] }));
  checkConfigError(365, notDeclared, "config.enable", defineEnable, declareEnable, m("disable-declare-enable", { disabledModules: [declareEnable] }));
  checkConfigError(366, notThere, "config.enable", defineEnable, declareEnable, m("disable-define-enable", { disabledModules: [defineEnable] }), m("disable-declare-enable", { disabledModules: [declareEnable] }));
  checkConfigError(367, notThere, "config.enable", defineEnable, declareEnable, m("disable-enable-modules", { disabledModules: ["define-enable.ts", "declare-enable.ts"] }));
  // disable-recursive: main imports foo and bar, each of which imports declare-enable.
  const foo = m("disable-recursive/foo", { imports: [declareEnable] });
  const bar = m("disable-recursive/bar", { imports: [declareEnable] });
  const main = m("disable-recursive/main", { imports: [foo, bar], enable: true });
  const disableFoo = m("disable-recursive/disable-foo", { disabledModules: [foo] });
  const disableBar = m("disable-recursive/disable-bar", { disabledModules: [bar] });
  checkConfigOutput(484, true, "config.enable", main);
  checkConfigOutput(485, true, "config.enable", main, disableFoo);
  checkConfigOutput(486, true, "config.enable", main, disableBar);
  checkConfigError(487, /The option `enable' does not exist\. Definition values:\n- In `disable-recursive\/main\.ts': true/, "config.enable", main, disableFoo, disableBar);
});

describe("_module.args", () => {
  const withCustomArg = fixture("define-enable-with-custom-arg", ({ custom }: { custom: boolean }) => ({ config: { enable: custom } }));
  checkConfigError(379, /The module function in `define-enable-with-custom-arg\.ts' asks for the argument `custom', which no module gives\./, "config.enable", declareEnable, withCustomArg);
  checkConfigOutput(380, true, "config.enable", declareEnable, withCustomArg, fixture("define-_module-args-custom", { config: { _module: { args: { custom: true } } } } as ModuleInput));
  const prefixArgument = fixture("prefix-module-argument", {
    options: { foo: mkOption({ type: types.submodule({}), default: {} }) },
    config: {
      foo: ({ _prefix }: { _prefix: readonly string[] }) => {
        assert.deepEqual(_prefix, ["foo"]);
        return { options: { ok: mkOption({ type: types.bool }) }, config: { ok: true } };
      },
    },
  } as ModuleInput);
  checkConfigOutput(470, true, "config.foo.ok", prefixArgument);
  const specialArgsLib = fixture("specialArgs-lib", ({ config }: { config: { weird: { foo: string } } }) => ({
    options: {
      result: mkOption({ type: types.str }),
      weird: mkOption({ type: types.submoduleWith({ specialArgs: { lib: {} }, modules: [] }) }),
    },
    config: {
      weird: (args: { lib: unknown; specialArgs: unknown }) => {
        assert.deepEqual(args.lib, {});
        assert.deepEqual(args.specialArgs, { lib: {} });
        return { options: { foo: mkOption({ type: types.str }) }, config: { foo: mkIf(true, "alright") } };
      },
      get result() {
        assert.equal(config.weird.foo, "alright");
        return "ok";
      },
    },
  }));
  checkConfigOutput(203, "ok", "config.result", specialArgsLib);
});

describe("_module.check", () => {
  const defineAttrsOfSubFoo = fixture("define-attrsOfSub-foo", { attrsOfSub: { foo: {} } } as ModuleInput);
  checkConfigError(390, /The option `attrsOfSub' does not exist\. Definition values:\n- In `define-attrsOfSub-foo\.ts'/, "config.enable", declareEnable, defineEnable, defineAttrsOfSubFoo);
  checkConfigOutput(391, true, "config.enable", declareEnable, defineEnable, defineAttrsOfSubFoo, fixture("define-module-check", { _module: { check: false } } as ModuleInput));
});

describe("option declarations: a bare enable, a type where an option belongs, options under an option", () => {
  checkConfigOutput(273, false, "config.enable", declareEnable);
  checkConfigError(665, /`options\.result' in `options-type-error-typical\.ts' is a type \(string\), where an option declaration is expected/, "config.result", fixture("options-type-error-typical", { options: { result: types.str } } as ModuleInput));
  checkConfigError(666, /`options\.result\.here' in `options-type-error-typical-nested\.ts' is a type \(string\), where an option declaration is expected/, "config.result.here", fixture("options-type-error-typical-nested", { options: { result: { here: types.str } } } as ModuleInput));
  const declareSet = fixture("declare-set", { options: { set: mkOption({ type: types.attrsOf(types.int), default: {}, description: "A set." }) } });
  const declareEnableNested = fixture("declare-enable-nested", { options: { set: { enable: mkOption({ type: types.bool, default: false, description: "Enable." }) } } });
  checkConfigError(659, /`declare-enable-nested\.ts' declares options under `set', which `declare-set\.ts' declares as an option\./, "config.set", declareSet, declareEnableNested);
});

describe("a bare submodule: options declared into it by other modules", () => {
  // submoduleWith { modules = [ ]; } is a submodule of no modules here.
  const bare = fixture("declare-bare-submodule", { options: { "bare-submodule": mkOption({ type: types.submodule({ options: {} }), default: {}, description: "Bare." }) } });
  const nested = fixture("declare-bare-submodule-nested-option", {
    options: { "bare-submodule": mkOption({ type: types.submodule({ options: { nested: mkOption({ type: types.int, default: 1 }) } }) }) },
  });
  const deep = fixture("declare-bare-submodule-deep-option", { options: { "bare-submodule": { deep: mkOption({ type: types.int, default: 2 }) } } });
  const values = fixture("define-bare-submodule-values", { "bare-submodule": { nested: 42, deep: 420 } } as ModuleInput);
  checkConfigOutput(285, 1, "config.bare-submodule.nested", bare, nested);
  checkConfigOutput(286, 2, "config.bare-submodule.deep", bare, deep);
  checkConfigOutput(287, 42, "config.bare-submodule.nested", bare, nested, deep, values);
  checkConfigOutput(288, 420, "config.bare-submodule.deep", bare, nested, deep, values);
  checkConfigError(
    290,
    /The option `bare-submodule\.deep' in `declare-bare-submodule-deep-option-duplicate\.ts' is already declared in `declare-bare-submodule-deep-option\.ts'/,
    "config.bare-submodule.deep",
    bare,
    deep,
    fixture("declare-bare-submodule-deep-option-duplicate", { options: { "bare-submodule": { deep: mkOption({ type: types.int, default: 2 }) } } }),
  );
});

describe("types.submoduleWith", () => {
  const special = fixture("declare-submoduleWith-special", {
    options: {
      submodule: mkOption({
        type: types.submoduleWith({ modules: [({ lib }: { lib: { foo: string } }) => ({ options: { foo: mkOption({ type: types.str, default: lib.foo }) } })], specialArgs: { lib: { foo: "foo" } } }),
        default: {},
      }),
    },
  });
  checkConfigOutput(444, "foo", "config.submodule.foo", special);
  const sub = { options: { config: mkOption({ type: types.bool, default: false }) } };
  const declare = (name: string, shorthandOnlyDefinesConfig?: boolean) =>
    fixture(name, { options: { submodule: mkOption({ type: types.submoduleWith({ modules: [sub], ...(shorthandOnlyDefinesConfig === undefined ? {} : { shorthandOnlyDefinesConfig }) }), default: {} }) } });
  const shorthand = fixture("define-submoduleWith-shorthand", { submodule: { config: true } } as ModuleInput);
  const noShorthand = fixture("define-submoduleWith-noshorthand", { submodule: { config: { config: true } } } as ModuleInput);
  checkConfigOutput(447, true, "config.submodule.config", declare("declare-submoduleWith-shorthand", true), shorthand);
  checkConfigError(448, /is not of type `boolean'/, "config.submodule.config", declare("declare-submoduleWith-shorthand", true), noShorthand);
  checkConfigError(449, /`submodule' is a group of options, but `define-submoduleWith-shorthand\.ts' sets it to the boolean true/, "config.submodule.config", declare("declare-submoduleWith-noshorthand"), shorthand);
  checkConfigOutput(450, true, "config.submodule.config", declare("declare-submoduleWith-noshorthand"), noShorthand);
  const withModules = fixture("declare-submoduleWith-modules", {
    options: { submodule: mkOption({ type: types.submoduleWith({ modules: [{ options: { inner: mkOption({ type: types.bool, default: false }) } }] }), default: {} }) },
    config: { submodule: mkMerge([() => ({ options: { outer: mkOption({ type: types.bool, default: false }) } }), { inner: true, outer: true }]) },
  } as ModuleInput);
  checkConfigOutput(453, true, "config.submodule.inner", withModules);
  checkConfigOutput(454, true, "config.submodule.outer", withModules);
});

describe("freeformType", () => {
  const freeformAttrsOf = fixture("freeform-attrsOf", { freeformType: types.attrsOf(types.either(types.str, types.attrsOf(types.str))) });
  const freeformLazyAttrsOf = fixture("freeform-lazyAttrsOf", { freeformType: types.lazyAttrsOf(types.either(types.str, types.lazyAttrsOf(types.str))) });
  const properties = fixture("define-value-string-properties", { imports: [{ value: mkDefault("def") }], value: mkMerge([mkIf(false, "nope"), "yes"]) } as ModuleInput);
  const tooStrict = (what: string) => assert.fail(`The module system is too strict, accessing an unused option's ${what}.`);
  // mkOption itself takes its attributes; what the module system could touch is the type's and the default's.
  const deathtrap = { type: new Proxy({}, { get: (_t, key) => tooStrict(`type's ${String(key)}`) }) as typeof types.bool, get default() { return tooStrict("default"); } };
  const nested = fixture("freeform-nested", {
    options: { nest: { foo: mkOption({ type: types.bool, default: false }), unused: mkOption(deathtrap) } },
    config: { nest: { bar: "bar" } },
  } as ModuleInput);
  // `mkIf (config ? value) config.value`: JavaScript evaluates both arguments first, so the read waits behind the test.
  const strDepUnstr = fixture("freeform-str-dep-unstr", ({ config }: { config: Record<string, unknown> }) => ({
    options: { foo: mkOption({ type: types.nullOr(types.str), default: null }) },
    config: { get foo() { return "value" in config ? config.value : mkIf(false, null); } },
  }));
  // A module reading its own option does it in `config` as a function, called once its options are declared.
  const unstrDepStr = fixture("freeform-unstr-dep-str", {
    options: { value: mkOption({ type: types.nullOr(types.str), default: null }) },
    config: ({ config }: { config: { value: string | null } }) => ({ foo: mkIf(config.value !== null, config.value) }),
  } as ModuleInput);
  checkConfigOutput(524, "24", "config.value", freeformAttrsOf, defineValueString);
  checkConfigOutput(528, {}, "config", freeformAttrsOf);
  checkConfigError(530, /A definition for option `value' is not of type .*\n- In `define-value-list\.ts': \[\]/, "config.value", freeformAttrsOf, defineValueList);
  checkConfigOutput(532, "yes", "config.value", freeformAttrsOf, properties);
  checkConfigOutput(534, false, "config.enable", freeformAttrsOf, defineValueString, declareEnable);
  checkConfigOutput(535, "24", "config.value", freeformAttrsOf, defineValueString, declareEnable);
  checkConfigOutput(537, false, "config.nest.foo", freeformAttrsOf, nested);
  checkConfigOutput(538, "bar", "config.nest.bar", freeformAttrsOf, nested);
  checkConfigOutput(540, null, "config.foo", freeformAttrsOf, strDepUnstr);
  checkConfigOutput(541, "24", "config.foo", freeformAttrsOf, strDepUnstr, defineValueString);
  checkConfigError(544, /The option `foo' is used but not defined/, "config.foo", freeformLazyAttrsOf, unstrDepStr);
  checkConfigOutput(545, "24", "config.foo", freeformLazyAttrsOf, unstrDepStr, defineValueString);
});

describe("types.raw", () => {
  const rawFixture = fixture("raw", ({ config }: { config: { unprocessedNesting: unknown } }) => ({
    options: {
      processedToplevel: mkOption({ type: types.raw }),
      unprocessedNesting: mkOption({ type: types.raw }),
      multiple: mkOption({ type: types.raw }),
      priorities: mkOption({ type: types.raw }),
      unprocessedNestingEvaluates: mkOption({
        type: types.anything,
        get default() {
          try {
            return { success: config.unprocessedNesting !== undefined, value: config.unprocessedNesting };
          } catch {
            return { success: false };
          }
        },
      }),
    },
    config: {
      processedToplevel: mkIf(true, 10),
      unprocessedNesting: { get foo(): never { throw new Error("foo"); } },
      multiple: mkMerge(["foo", "foo"]),
      priorities: mkMerge(["foo", mkForce("bar")]),
    },
  }));
  checkConfigOutput(653, true, "config.unprocessedNestingEvaluates.success", rawFixture);
  checkConfigOutput(654, 10, "config.processedToplevel", rawFixture);
  checkConfigError(655, /The option `multiple' is defined multiple times/, "config.multiple", rawFixture);
  checkConfigOutput(656, "bar", "config.priorities", rawFixture);
});

describe("types.functionTo", () => {
  type Fun<T> = (input: Record<string, string>) => T;
  const resultOf = <T>(name: string, type: Parameters<typeof mkOption>[0]["type"], show: (fun: Fun<T>) => string, fun: unknown) =>
    fixture(name, ({ config }: { config: { fun: Fun<T> } }) => ({
      options: { fun: mkOption({ type }), result: mkOption({ type: types.str, get default() { return show(config.fun); } }) },
      config: { fun },
    }));
  const abc = { a: "a", b: "b", c: "c" };
  checkConfigOutput(607, "input is input", "config.result", resultOf<string>("functionTo/trivial", types.functionTo(types.str), (fun) => fun("input" as never), (input: string) => `input is ${input}`));
  const list = (fun: Fun<string[]>) => fun(abc).join(" ");
  checkConfigOutput(608, "a b", "config.result", resultOf("functionTo/merging-list", types.functionTo(types.listOf(types.str)), list, mkMerge([(input: typeof abc) => [input.a], (input: typeof abc) => [input.b]])));
  checkConfigError(
    609,
    /A definition for option `fun\.<function body>' is not of type `string'.*\n- In `functionTo\/wrong-type\.ts'/,
    "config.result",
    resultOf<string>("functionTo/wrong-type", types.functionTo(types.str), (fun) => fun(0 as never), (input: number) => input + 1),
  );
  checkConfigOutput(610, "b a", "config.result", resultOf("functionTo/list-order", types.functionTo(types.listOf(types.str)), list, mkMerge([(input: typeof abc) => mkAfter([input.a]), (input: typeof abc) => [input.b]])));
  checkConfigOutput(
    611,
    "a c",
    "config.result",
    resultOf<Record<string, string>>(
      "functionTo/merging-attrs",
      types.functionTo(types.attrsOf(types.str)),
      (fun) => Object.values(fun(abc)).join(" "),
      mkMerge([(input: typeof abc) => ({ a: input.a }), (input: typeof abc) => ({ b: input.b }), (input: typeof abc) => ({ b: mkForce(input.c) })]),
    ),
  );
  const submoduleOptions = fixture("functionTo/submodule-options", ({ config }: { config: { fun: Fun<Record<string, string>> } }) => ({
    imports: [
      { options: { fun: mkOption({ type: types.functionTo(types.submodule({ a: mkOption({ type: types.str, default: "a" }) })) }) } },
      { options: { fun: mkOption({ type: types.functionTo(types.submodule({ b: mkOption({ type: types.str, default: "b" }) })) }) } },
    ],
    options: {
      result: mkOption({ type: types.str, get default() { return Object.values(config.fun(new Proxy({}, { get: () => assert.fail("shouldn't use input param") }))).join(" "); } }),
    },
    config: { fun: mkMerge([() => ({ b: "bee" })]) },
  }));
  checkConfigOutput(612, "a bee", "config.result", submoduleOptions);
});

describe("emptyValue, and options with no definitions", () => {
  const none = mkIf(false, null);
  const emptyValues = fixture("emptyValues", {
    options: {
      int: mkOption({ type: types.lazyAttrsOf(types.int) }),
      list: mkOption({ type: types.lazyAttrsOf(types.listOf(types.int)) }),
      nonEmptyList: mkOption({ type: types.lazyAttrsOf(types.nonEmptyListOf(types.int)) }),
      attrs: mkOption({ type: types.lazyAttrsOf(types.attrsOf(types.int)) }),
      null: mkOption({ type: types.lazyAttrsOf(types.nullOr(types.int)) }),
      submodule: mkOption({ type: types.lazyAttrsOf(types.submodule({})) }),
    },
    config: { int: { a: none }, list: { a: none }, nonEmptyList: { a: none }, attrs: { a: none }, null: { a: none }, submodule: { a: none } },
  } as ModuleInput);
  checkConfigOutput(621, [], "config.list.a", emptyValues);
  checkConfigOutput(622, {}, "config.attrs.a", emptyValues);
  checkConfigOutput(623, null, "config.null.a", emptyValues);
  checkConfigOutput(624, {}, "config.submodule.a", emptyValues);
  checkConfigError(626, /The option `int\.a' is used but not defined/, "config.int.a", emptyValues);
  checkConfigError(627, /The option `nonEmptyList\.a' is used but not defined/, "config.nonEmptyList.a", emptyValues);

  const defaults = fixture("defaults", ({ config }: { config: { submoduleWithDefaults: unknown } }) => ({
    options: {
      list: mkOption({ type: types.listOf(types.int) }),
      // NixOS's types.attrs: a record of anything.
      attrs: mkOption({ type: types.attrsOf(types.anything) }),
      attrsOf: mkOption({ type: types.attrsOf(types.int) }),
      null: mkOption({ type: types.nullOr(types.int) }),
      submodule: mkOption({ type: types.submodule({}) }),
      submoduleWithDefaults: mkOption({ type: types.submodule({ enabled: mkOption({ type: types.bool, default: true }), count: mkOption({ type: types.int, default: 13 }) }) }),
      unique: mkOption({ type: types.unique({ message: "hi" }, types.listOf(types.int)) }),
      coercedTo: mkOption({ type: types.coercedTo(types.attrsOf(types.int), (attrs: Record<string, number>) => Object.keys(attrs), types.listOf(types.str)) }),
      int: mkOption({ type: types.int }),
      result: mkOption({
        type: types.str,
        get default() {
          assert.deepEqual(config.submoduleWithDefaults, { enabled: true, count: 13 });
          return "ok";
        },
      }),
    },
  }));
  checkConfigOutput(630, [], "config.list", defaults);
  checkConfigOutput(631, {}, "config.attrs", defaults);
  checkConfigOutput(632, {}, "config.attrsOf", defaults);
  checkConfigOutput(633, null, "config.null", defaults);
  checkConfigOutput(634, {}, "config.submodule", defaults);
  checkConfigOutput(635, [], "config.unique", defaults);
  checkConfigOutput(636, [], "config.coercedTo", defaults);
  checkConfigError(638, /The option `int' is used but not defined/, "config.int", defaults);
  checkConfigOutput(640, "ok", "config.result", defaults);
});

describe("types.boolByOr", () => {
  const boolByOr = fixture("boolByOr", {
    options: { value: mkOption({ type: types.lazyAttrsOf(types.boolByOr) }) },
    config: { value: { falseFalse: mkMerge([false, false]), trueFalse: mkMerge([true, false]), falseTrue: mkMerge([false, true]), trueTrue: mkMerge([true, true]) } },
  } as ModuleInput);
  checkConfigOutput(280, false, "config.value.falseFalse", boolByOr);
  checkConfigOutput(281, true, "config.value.trueFalse", boolByOr);
  checkConfigOutput(282, true, "config.value.falseTrue", boolByOr);
  checkConfigOutput(283, true, "config.value.trueTrue", boolByOr);
});

describe("types.attrsWith", () => {
  const lazy = mkOption({ type: types.attrsWith({ lazy: true, elemType: types.int }) });
  const strict = mkOption({ type: types.attrsWith({ elemType: types.int }) });
  // keel refuses the two declarations of mergedLazyNonLazy as soon as it reads them (NixOS: when that option is read): 511 goes without them.
  const lazyAttrsWith = (withConflict: boolean) =>
    fixture("lazy-attrsWith", {
      imports: [
        { options: { mergedLazyLazy: lazy, ...(withConflict ? { mergedLazyNonLazy: lazy } : {}), mergedNonLazyNonLazy: strict } },
        { options: { mergedLazyLazy: lazy, ...(withConflict ? { mergedLazyNonLazy: strict } : {}), mergedNonLazyNonLazy: strict } },
        ({ config }: { config: { mergedLazyLazy: Record<string, number> } }) => ({
          // A value reading another of its record: a getter, evaluated when read (NixOS's values are lazy).
          config: { mergedLazyLazy: { get bar() { return (config.mergedLazyLazy.baz ?? 0) + 1; }, baz: 10 } },
          options: { lazyResult: mkOption({ type: types.int, get default() { return config.mergedLazyLazy.bar; } }) },
        }),
      ],
    } as ModuleInput);
  checkConfigError(510, /The option `mergedLazyNonLazy' in `lazy-attrsWith\.ts' is already declared in `lazy-attrsWith\.ts'/, "config.mergedLazyNonLazy", lazyAttrsWith(true));
  checkConfigOutput(511, 11, "config.lazyResult", lazyAttrsWith(false));
  const nested = types.submodule({ nested: mkOption({ type: types.int, default: 1 }) });
  const nameMerge2 = fixture("name-merge-attrsWith-2", {
    imports: [
      fixture("name-merge-attrsWith-2/a", { options: { mergedName: mkOption({ type: types.attrsWith({ placeholder: "id", elemType: nested }), default: {} }) } }),
      fixture("name-merge-attrsWith-2/b", { options: { mergedName: mkOption({ type: types.attrsWith({ placeholder: "other", elemType: types.submodule({}) }) }) } }),
    ],
  } as ModuleInput);
  checkConfigError(516, /The option `mergedName' in `name-merge-attrsWith-2\/b\.ts' is already declared in `name-merge-attrsWith-2\/a\.ts'/, "config.mergedName", nameMerge2);
});

describe("freeformType that is no record type (either, oneOf)", () => {
  const freeformOf = (type: Parameters<typeof mkOption>[0]["type"]) => mkOption({ type: types.submodule({ options: {}, freeformType: type }) });
  const malicious = fixture("freeform-deprecated-malicous", {
    options: {
      either: freeformOf(types.either(types.int, types.int)),
      eitherBehindNullor: freeformOf(types.nullOr(types.either(types.int, types.int))),
      oneOf: freeformOf(types.oneOf([types.int, types.int])),
      number: freeformOf(types.number),
    },
  });
  // NixOS warns that the record did not pass the type's check and takes it unchecked; with ABORT_ON_WARN the warning fails the evaluation. keel refuses such a type.
  const wrong = fixture("freeform-deprecated-malicous-wrong", { either: { int: "foo" }, eitherBehindNullor: { int: "foo" }, oneOf: { int: "foo" }, number: { str: "foo" } } as ModuleInput);
  const wrong2 = fixture("freeform-deprecated-malicous-wrong2", { either: { int: 42 }, eitherBehindNullor: { int: 42 }, oneOf: { int: 42 }, number: { str: 42 } } as ModuleInput);
  const refused = (path: string, description: string) => new RegExp(`The freeform type of \`${path}' is \`${description.replace(/[()]/g, "\\$&")}', which takes no record`);
  checkConfigError(554, refused("either", "integer or integer"), "config.either.int", malicious, wrong);
  checkConfigError(556, refused("eitherBehindNullor", "null or (integer or integer)"), "config.eitherBehindNullor.int", malicious, wrong);
  checkConfigError(558, refused("oneOf", "integer or integer"), "config.oneOf.int", malicious, wrong);
  checkConfigError(560, refused("number", "number"), "config.number.str", malicious, wrong);
  checkConfigError(563, refused("either", "integer or integer"), "config.either.int", malicious, wrong2);
  checkConfigError(565, refused("eitherBehindNullor", "null or (integer or integer)"), "config.eitherBehindNullor.int", malicious, wrong2);
  checkConfigError(567, refused("oneOf", "integer or integer"), "config.oneOf.int", malicious, wrong2);
  checkConfigError(569, refused("number", "number"), "config.number.str", malicious, wrong2);
  const attrsofEither = fixture("freeform-attrsof-either", {
    options: { number: mkOption({ type: types.submodule({ options: {}, freeformType: types.attrsOf(types.either(types.int, types.int)) }), default: { int: 42 } }) },
  });
  checkConfigOutput(571, 42, "config.number.int", attrsofEither);
});

describe("module classes (_class, evalModules' class, submoduleWith's class)", () => {
  const isNixos = fixture("module-class-is-nixos", { _class: "nixos", config: {} });
  const isDarwin = fixture("module-class-is-darwin", { _class: "darwin", config: {} });
  const assertNixos = fixture("assert-module-class-is-nixos", ({ _class }: { _class: string | null }) => {
    assert.equal(_class, "nixos");
    return {};
  });
  // class-check.nix's `ok', `fail' and `fail-anon' are lib.evalModules calls: evaluated here with the class.
  checkEvalModulesOutput(694, {}, "nixos", "config", isNixos, assertNixos);
  checkConfigOutput(695, "nixos", "config.class", fixture("class-check", { _module: { freeformType: types.attrsOf(types.anything) }, class: evaluateModules({ modules: [isNixos, assertNixos], rootFile: "class-check.ts", class: "nixos" }).class } as ModuleInput));
  checkEvalModulesError(696, /The module `module-class-is-darwin\.ts' is of class "darwin", but this evaluation expects class "nixos"\./, "nixos", "config", isNixos, isDarwin);
  const anonymous = fixture("foo.nix#darwinModules.default", { _class: "darwin", config: {}, imports: [] });
  checkEvalModulesError(697, /The module `foo\.nix#darwinModules\.default\.ts' is of class "darwin", but this evaluation expects class "nixos"\./, "nixos", "config", isNixos, anonymous);
  // keel refuses two declarations that do not merge as soon as it reads them, NixOS only when the option is read:
  // 700-701 use class-check.nix's submodules without `mergeFail', whose two declarations are 704's.
  const classCheck = (withMergeFail: boolean) =>
    fixture("class-check", {
      imports: withMergeFail ? [{ options: { sub: { mergeFail: mkOption({ type: types.submoduleWith({ class: "darwin", modules: [] }) }) } } }] : [],
      options: {
        sub: {
          nixosOk: mkOption({ type: types.submoduleWith({ class: "nixos", modules: [assertNixos] }) }),
          nixosFail: mkOption({ type: types.submoduleWith({ class: "nixos", modules: [] }) }),
          ...(withMergeFail ? { mergeFail: mkOption({ type: types.submoduleWith({ class: "nixos", modules: [] }), default: {} }) } : {}),
        },
      },
      config: { sub: { nixosOk: { _class: "nixos" }, nixosFail: { imports: [isDarwin] } } },
    } as ModuleInput);
  checkConfigOutput(700, {}, "config.sub.nixosOk", classCheck(false));
  checkConfigError(701, /The module `module-class-is-darwin\.ts' is of class "darwin", but this evaluation expects class "nixos"\./, "config.sub.nixosFail", classCheck(false));
  checkConfigError(704, /The option `sub\.mergeFail' in `class-check\.ts' is already declared in `class-check\.ts': their types do not merge/, "config.sub.mergeFail", classCheck(true));

  const exposeClass = fixture("expose-module-class", ({ _class }: { _class: string | null }) => ({ options: { foo: mkOption({ type: types.anything, default: _class }) } }));
  const polymorphic = fixture("polymorphic-module", ({ _class }: { _class: string | null }) => ({
    imports: [
      _class === "nixos" ? { options: { foo: mkOption({ type: types.str, default: "bar" }) } } : {},
      _class === "darwin" ? { options: { bar: mkOption({ type: types.str, default: "foo" }) } } : {},
    ],
  }));
  const notFound = (name: string) => new RegExp(`\`${name}'.*(does not exist|is not an option)|has no \`${name}'`);
  checkEvalModulesOutput(791, "nixos", "nixos", "config.foo", exposeClass);
  checkEvalModulesOutput(792, "bar", "nixos", "config.foo", polymorphic);
  checkEvalModulesError(793, notFound("bar"), "nixos", "config.bar", polymorphic);
  checkEvalModulesError(794, notFound("foo"), "darwin", "config.foo", polymorphic);
  checkEvalModulesOutput(795, "foo", "darwin", "config.bar", polymorphic);
  const sub = (cls: string, module: ModuleInput) => mkOption({ type: types.submoduleWith({ class: cls, modules: [module] }), default: {} });
  const specialArgsClass = fixture("specialArgs-class", {
    options: { sub: { nixos: sub("nixos", exposeClass), conditionalImportAsNixos: sub("nixos", polymorphic), conditionalImportAsDarwin: sub("darwin", polymorphic) } },
  });
  checkConfigOutput(796, "nixos", "config.sub.nixos.foo", specialArgsClass);
  checkConfigOutput(797, "bar", "config.sub.conditionalImportAsNixos.foo", specialArgsClass);
  checkConfigError(798, notFound("sub.conditionalImportAsNixos.bar"), "config.sub.conditionalImportAsNixos.bar", specialArgsClass);
  checkConfigError(799, notFound("sub.conditionalImportAsDarwin.foo"), "config.sub.conditionalImportAsDarwin.foo", specialArgsClass);
  checkConfigOutput(800, "foo", "config.sub.conditionalImportAsDarwin.bar", specialArgsClass);
});

describe("addCheck (types.checked)", () => {
  // NixOS's addCheck takes a predicate; keel's checked says why a value is refused, in the message.
  const v1Type = types.checked(types.int, (v) => (v === 0 ? undefined : { problem: "is not of type `integer' that is 0", fix: "make it 0" }));
  const v2Type = types.checked(types.attrsOf(types.int), (v) => ("foo" in v ? undefined : { problem: "is not of type `record of integer' with a `foo'", fix: "give it a `foo'" }));
  const addCheck = fixture("add-check", {
    options: {
      v1CheckedPass: mkOption({ type: v1Type, default: 0 }),
      v1CheckedFail: mkOption({ type: v1Type, default: 1 }),
      v2checkedPass: mkOption({ type: v2Type, default: { foo: 1 } }),
      v2checkedFail: mkOption({ type: v2Type, default: {} }),
    },
  });
  checkConfigOutput(816, 0, "config.v1CheckedPass", addCheck);
  checkConfigError(817, /A definition for option `v1CheckedFail' is not of type `integer'/, "config.v1CheckedFail", addCheck);
  // The fixture's `apply = v: v.foo == 1' is not keel's (no apply): the value itself is checked.
  checkConfigOutput(818, { foo: 1 }, "config.v2checkedPass", addCheck);
  checkConfigError(819, /A definition for option `v2checkedFail' is not of type `record of integer'/, "config.v2checkedFail", addCheck);
});

/** The groups of modules.sh not translated, by line, with why. */
const skipped: readonly (readonly [group: string, lines: string, why: string])[] = [
  ["shorthand modules (meta/class keywords)", "172", "not in keel's API"],
  ["error messages: non-attrset definition / option declared in config", "174,210,211", "174 needs shorthand-module push-down; 210-211 need submodules that are modules (issue 15, Deliver 2)"],
  ["mkForce/mkOverride priorities (mkForce at every nesting level)", "176", "176 tests lib.modules.mergeAttrDefinitionsWithPrio, not in keel's API"],
  ["_module.args/specialArgs (module arguments)", "198,385,386", "198: a module reading an argument it gives itself with a default (Nix passes every argument the function names; keel's module function asks for each, and one no module gives yet is an error); 385-386: NixOS refuses imports computed from _module.args (infinite recursion), keel takes them when they are the same in every call"],
  ["lib.gvariant", "201", "not applicable (dconf values)"],
  ["types.attrTag", "224", "224: keel's attrTag takes options by type (a bare type is a type error in the editor)"],
  ["type descriptions (types.nix assertion block)", "227", "not translated yet"],
  ["package/path (pathInStore, externalPath, pathWith)", "230,231,232,233,234,235,236,237,240,241,242,243,244,245,246,746,747,748,749,750,751,752,753,756,757,758,759,760,761,762,763,764,767,768,769,772,773,774,777,780", "not applicable: Nix store paths"],
  ["types.fileset", "249,250,251,252,253,254,255,256,257", "not applicable: Nix filesets"],
  ["types.serializableValueWith", "260,261,262,263,264,265,266,267,269,270", "not in keel's API"],
  ["undeclared options (option does not exist) / _module.check", "275,276,277", "275-277 need Nix's throw/abort inside a definition"],
  ["bare submodule (nested option declarations into types.submodule {})", "289", "289 sets shorthandOnlyDefinesConfig from config (submoduleWith is not in keel)"],
  ["declaration merging / option collisions", "670", "670: a typeless option, which keel's mkOption refuses in the editor"],
  ["types.str/strMatching", "293", "293 reads options.sm.type.name: types are not inspectable by name in keel"],
  ["either/oneOf", "553,555,557,559,562,564,566,568", "NixOS takes a freeform record its type rejects (either int int) with a deprecation warning; keel refuses the type (the checks of the warning, 554-569, are translated)"],
  ["imports / module loading / keys / importApply", "353,358,490,707,709,710,711,724,725", "modules are TypeScript values, not paths with keys"],
  ["disabledModules", "369,370,371,374,375", "369-375 disable by a module's `key' attribute, which keel's modules (values, not paths) do not have"],
  ["mkRenamedOptionModule/mkRemovedOptionModule/mkAliasOptionModule/doRename", "719,720,721", "719-721 read options.<x>.isDefined through doRename's condition, not in keel's API"],
  ["mkPackageOption", "417,418,419,420,421,422,423,424,425,426,427,428,429,430,431,432,433,434,435,436,437,438,439", "not applicable: keel's packages are Debian package names"],
  ["submoduleWith/shorthandOnlyDefinesConfig", "457,460,461,464,467", "457, 464: options.<x>.type.description is not readable in keel; 460-461: lib.evalModules' type; 467: a module given by path"],
  ["deferredModule/moduleType", "474,476,477,616,617,618", "not in keel's API"],
  ["submodule (config, name, imports, file locations)", "480", "480 checks the file locations of a submodule's definitions, which keel's messages do not list that way"],
  ["conditional definitions on option existence (options ? x)", "493,494,495,496,497,498", "modules cannot read `options' in keel"],
  ["attrsOf/lazyAttrsOf/attrsWith (laziness, conditionals, merging)", "507,512,515", "507: an element type's own emptyValue, written in Nix as an attribute set update of a type; 512: NixOS recurses infinitely where keel answers (keel merges a strict record's values per name too, only its names at once); 515 reads options.<x>.type.getSubOptions, not in keel's API"],
  ["freeformType", "526,543,547,549,550", "526: shorthand modules' meta/class keywords are not keel's; 543: NixOS recurses infinitely (strict attrsOf needs every freeform name, and one's condition reads a declared option); keel answers, that `foo' does not exist (its only definition is mkIf(false)); 547-550: freeform types merged as option types, and their declaration locations"],
  ["types.anything", "581,593,594,595,596", "581 needs Nix's string-coercible sets (outPath); 593-596 need functions inside anything, which keel's anything compares as values"],
  ["functionTo", "613", "613 reads options.fun.type.getSubOptions, not in keel's API"],
  ["error messages: option-type used instead of mkOption", "667", "667: a whole configuration where an option belongs, which keel's modules cannot produce"],
  ["types.optionType/optionDeclaration", "673,674,677,678,681,684,687", "not in keel's API"],
  ["extendModules", "691", "not in keel's API"],
  ["declaration positions (options.*.declarationPositions)", "729,730,733,734,736,737,740,741,743", "not in keel's API"],
  ["mkDefinition", "784,785,786,787,788", "not in keel's API"],
  ["valueMeta", "802,803,804,808,809,812,813", "not in keel's API"],
  ["addCheck / v2 check+merge coherence", "823,825,827,829,831,833,835,836,837,838", "NixOS's v2 check+merge protocol (checkV2MergeCoherence) has no counterpart: keel's types have one merge"],
  ["types.attrListOf", "850,851,852,853,854,857,860", "not in keel's API"],
];

describe("modules.sh groups not translated", () => {
  for (const [group, lines, why] of skipped) it(`${group} (modules.sh:${lines})`, { skip: why }, () => undefined);

  it("every check of modules.sh is translated or skipped with its group's reason, and the count is said", () => {
    const skippedLines = new Map(skipped.flatMap(([group, lines]) => lines.split(",").map((l) => [Number(l), group] as const)));
    for (const check of catalog) {
      const where = translated.has(check.line) ? "translated" : skippedLines.get(check.line) === check.group ? "skipped" : undefined;
      assert.ok(where !== undefined, `modules.sh:${check.line} (${check.group}) is neither translated nor skipped in its group`);
      assert.ok(!(translated.has(check.line) && skippedLines.has(check.line)), `modules.sh:${check.line} is both translated and skipped`);
    }
    console.log(`# modules.sh: ${catalog.length} checks, ${translated.size} translated, ${skippedLines.size} skipped in ${skipped.length} groups`);
    const byGroup = new Map<string, { translated: number; skipped: number }>();
    for (const check of catalog) {
      const counts = byGroup.get(check.group) ?? { translated: 0, skipped: 0 };
      counts[translated.has(check.line) ? "translated" : "skipped"]++;
      byGroup.set(check.group, counts);
    }
    for (const [group, counts] of byGroup) console.log(`# modules.sh: ${String(counts.translated).padStart(3)} translated, ${String(counts.skipped).padStart(3)} skipped: ${group}`);
  });
});
