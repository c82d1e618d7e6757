// Submodules that are modules (issue 15): `types.submodule` given a module —
// options and config, imports, a function of `{ config, name, lib }` — as the
// `users.users.<name>` and `systemd.services.<name>` patterns need.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { evaluateModules } from "../../src/config/modules.ts";
import { mkDefault, mkOption, mkRemovedOptionModule, mkRenamedOptionModule, types } from "../../src/index.ts";
import type { ModuleInput } from "../../src/config/module.ts";

const evaluate = (path: string, ...modules: ModuleInput[]) => evaluateModules({ modules, rootFile: "submodule.test.ts" }).resolve(path.split("."));

/** Users whose home defaults to /home/<name>, and whose greeting reads a sibling option. */
const user = types.submodule(({ name, config }) => ({
  options: {
    home: mkOption({ type: types.str, description: "The home directory." }),
    shell: mkOption({ type: types.str, default: "/bin/sh", description: "The login shell." }),
    greeting: mkOption({ type: types.str, description: "Made from the name and the shell." }),
  },
  config: {
    home: mkDefault(`/home/${name}`),
    get greeting() {
      return `${name} uses ${config.shell}`;
    },
  },
}));
const declareUsers = { options: { people: mkOption({ type: types.attrsOf(user), default: {}, description: "People." }) } };

const service = types.submodule({
  options: {
    enable: mkOption({ type: types.bool, default: false, description: "Whether it runs." }),
    after: mkOption({ type: types.listOf(types.str), default: [], description: "What it starts after." }),
  },
});
const declareServices = { options: { services: mkOption({ type: types.attrsOf(service), default: {}, description: "Services." }) } };

describe("types.submodule of a module", () => {
  it("config computed from `name`: a per-user home default, overridden where a user sets one", () => {
    assert.deepEqual(evaluate("people", declareUsers, { people: { alice: {}, bob: { home: "/srv/bob", shell: "/bin/bash" } } }), {
      alice: { home: "/home/alice", shell: "/bin/sh", greeting: "alice uses /bin/sh" },
      bob: { home: "/srv/bob", shell: "/bin/bash", greeting: "bob uses /bin/bash" },
    });
  });

  it("a module that sets another service's options in an attrsOf submodule, reading the first's", () => {
    const database = ({ config }: { config: { services: Record<string, { enable: boolean }> } }) => ({
      services: {
        db: {
          get enable() {
            return config.services.web?.enable ?? false;
          },
        },
        web: { after: ["db.service"] },
      },
    });
    assert.deepEqual(evaluate("services", declareServices, { services: { web: { enable: true } } }, database), {
      web: { enable: true, after: ["db.service"] },
      db: { enable: true, after: [] },
    });
  });

  it("definitions from several modules merge as modules: lists join, priorities apply, imports inside the submodule count", () => {
    const withImports = types.submodule({ imports: [{ options: { tags: mkOption({ type: types.listOf(types.str), default: [], description: "Tags." }) } }], options: { port: mkOption({ type: types.port, default: 80, description: "Port." }) } });
    const declare = { options: { site: mkOption({ type: withImports, default: {}, description: "A site." }) } };
    assert.deepEqual(evaluate("site", declare, { site: { tags: ["a"], port: mkDefault(81) } }, { site: { tags: ["b"] } }), { tags: ["a", "b"], port: 81 });
  });

  it("an unknown name inside a value is an error with the whole path and the names it may have meant", () => {
    assert.throws(() => evaluate("people", declareUsers, { people: { carol: { hme: "/x" } } }), /The option `people\.carol\.hme' does not exist\.[\s\S]*Did you mean `people\.carol\.home'\?/);
  });

  it("declared twice, a submodule of a module and one of an option tree join: each value has the options of both", () => {
    const more = { options: { people: mkOption({ type: types.attrsOf(types.submodule({ uid: mkOption({ type: types.int, default: 1000, description: "The uid." }) })) }) } };
    assert.deepEqual(evaluate("people.alice", declareUsers, more, { people: { alice: { uid: 1001 } } }), { home: "/home/alice", shell: "/bin/sh", greeting: "alice uses /bin/sh", uid: 1001 });
  });
});

describe("options that moved or went away", () => {
  it("mkRemovedOptionModule: a definition is an error with the replacement instructions and the file; so is a read", () => {
    const removed = mkRemovedOptionModule(["services", "old", "enable"], "Use services.new.enable instead.");
    assert.throws(
      () => evaluate("services", removed, { services: { old: { enable: true } } }),
      /^ConfigError: The option `services\.old\.enable' defined in `submodule\.test\.ts' can no longer be used since it's been removed\. Use services\.new\.enable instead\.\nFix: remove its definition from `submodule\.test\.ts'; the message says what replaces it\.$/,
    );
    assert.throws(() => evaluate("services.old.enable", removed), /The option `services\.old\.enable' can no longer be used since it's been removed\./);
  });

  it("mkRenamedOptionModule: the old name's definitions (with their priorities) reach the new option, reading the old name reads the new, and the whole configuration holds the value once", () => {
    const declare = { options: { port: mkOption({ type: types.port, default: 22, description: "The port." }) } };
    const modules = [declare, mkRenamedOptionModule("sshPort", "port"), { sshPort: mkDefault(2222) }];
    assert.equal(evaluate("port", ...modules), 2222);
    assert.equal(evaluate("sshPort", ...modules), 2222);
    assert.deepEqual(evaluateModules({ modules, rootFile: "submodule.test.ts" }).resolve([]), { port: 2222 });
  });
});

describe("module arguments", () => {
  it("specialArgs and _module.args reach every module function; an argument nobody gives is an error naming it and the module", () => {
    const declare = { options: { motd: mkOption({ type: types.str, description: "The message." }) } };
    const reads = ({ site, greeting }: { site: string; greeting: string }) => ({ motd: `${greeting} from ${site}` });
    const evaluation = evaluateModules({ modules: [declare, reads, { _module: { args: { greeting: "hello" } } }], rootFile: "submodule.test.ts", specialArgs: { site: "office" } });
    assert.equal(evaluation.resolve(["motd"]), "hello from office");
    assert.deepEqual(evaluation.resolve([]), { motd: "hello from office" }, "the module system's own options are not in the configuration");
    assert.throws(() => evaluateModules({ modules: [declare, reads], rootFile: "submodule.test.ts" }).resolve(["motd"]), /asks for the argument `site', which no module gives\./);
  });
});
