// Module functions are called with the real configuration, never a stand-in
// (issue 15): what they read is the option's final value, or an error.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { evaluateModules } from "../../src/config/modules.ts";
import { mkIf, mkOption, types } from "../../src/index.ts";
import type { ModuleInput } from "../../src/config/module.ts";

const evaluate = (path: string, ...modules: ModuleInput[]) => evaluateModules({ modules, rootFile: "laziness.test.ts" }).resolve(path.split("."));

const declareA = { options: { a: mkOption({ type: types.int, description: "A number." }) } };
const defineA3 = { a: 3 };

describe("module functions read final values", () => {
  it("an option's default computed from config in a module function is the final value", () => {
    const doubled = ({ config }: { config: { a: number } }) => ({
      options: { b: mkOption({ type: types.int, default: config.a * 2, description: "Twice a." }) },
    });
    assert.equal(evaluate("b", doubled, declareA, defineA3), 6);
    assert.equal(evaluate("b", declareA, defineA3, doubled), 6);
  });

  it("a default written as a getter reads an option the same module declares, when read, also once the option is declared again", () => {
    let reads = 0;
    const own = ({ config }: { config: { a: number } }) => ({
      options: {
        a: mkOption({ type: types.int, default: 20, description: "A number." }),
        b: mkOption({
          type: types.int,
          get default() {
            reads++;
            return config.a + 1;
          },
          description: "a + 1.",
        }),
      },
    });
    const again = { options: { b: mkOption({ type: types.int }) } };
    assert.equal(evaluate("a", own, again), 20);
    assert.equal(reads, 0, "b's default is not read for a");
    assert.equal(evaluate("b", own, again), 21);
  });

  it("…when the option it reads comes from the module's own imports", () => {
    const doubled = ({ config }: { config: { a: number } }) => ({
      imports: [declareA, defineA3],
      options: { b: mkOption({ type: types.int, default: config.a * 2, description: "Twice a." }) },
    });
    assert.equal(evaluate("b", doubled), 6);
  });

  it("an option declared by a module function later in the list", () => {
    const reader = ({ config }: { config: { a: number } }) => ({ options: { c: mkOption({ type: types.int, default: config.a + 1, description: "a + 1." }) } });
    const declarer = () => ({ options: { a: mkOption({ type: types.int, default: 41, description: "A number." }) } });
    assert.equal(evaluate("c", reader, declarer), 42);
  });

  it("a module function whose reads are answered is called once", () => {
    let calls = 0;
    const counted = ({ config }: { config: { a: number } }) => {
      calls++;
      return { options: { b: mkOption({ type: types.int, default: config.a, description: "a." }) } };
    };
    assert.equal(evaluate("b", declareA, defineA3, counted), 3);
    assert.equal(calls, 1);
  });

  it("a read of an option nobody declares is an error naming it, never a stand-in value", () => {
    const typo = ({ config }: { config: Record<string, number> }) => ({
      options: { b: mkOption({ type: types.int, default: config.aa ?? 0, description: "From a typo." }) },
    });
    assert.throws(() => evaluate("b", declareA, defineA3, typo), /`laziness\.test\.ts' reads `config\.aa', which is not an option\.\nDid you mean `config\.a'\?/);
  });
});

describe("mkIf(false, …) never forces its content", () => {
  const unknown = ({ config }: { config: { does: { not: unknown } } }) => ({
    a: mkIf(false, {
      get x() {
        return config.does.not;
      },
    }),
  });
  it("its content written as a getter is not read", () => assert.deepEqual(evaluate("a", declareA, defineA3, unknown), 3));
  it("JavaScript evaluates an argument before mkIf runs: an eager read of what does not exist is the error", () => {
    const eager = ({ config }: { config: { does: { not: unknown } } }) => ({ a: mkIf(false, config.does.not as never) });
    assert.throws(() => evaluate("a", declareA, defineA3, eager), /reads `config\.does', which is not an option/);
  });
});

describe("imports computed from config", () => {
  const declareX = { options: { x: mkOption({ type: types.int, default: 0, description: "x." }) } };
  const setX1 = { x: 1 };
  it("follow the final configuration when the modules they bring do not change what they read", () => {
    const extra = { options: { y: mkOption({ type: types.int, default: 7, description: "y." }) } };
    const chooser = ({ config }: { config: { x: number } }) => ({ imports: config.x === 1 ? [extra] : [] });
    assert.equal(evaluate("y", declareX, setX1, chooser), 7);
    assert.throws(() => evaluate("y", declareX, chooser), /The option `y' does not exist/);
  });
  it("are an error when the modules they bring change what they were computed from", () => {
    const flipping = ({ config }: { config: { x: number } }) => ({ imports: config.x === 1 ? [] : [setX1] });
    assert.throws(() => evaluate("x", declareX, flipping), /computes its `imports' from `config': they differ/);
  });
});
