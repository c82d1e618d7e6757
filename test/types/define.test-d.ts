// Type-level tests: checked by the TypeScript compiler (see types.test.ts), never run.
// Each `@ts-expect-error` pins a mistake the editor must flag; each `expectType`
// pins what the editor infers.
import {
  defineModule,
  defineProject,
  mkAfter,
  mkDefault,
  mkForce,
  mkIf,
  mkMerge,
  mkOption,
  types,
  type ModuleFunction,
  type ModuleObject,
  type ProjectSpec,
} from "../../src/index.ts";

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function expectType<T extends true>(_proof?: T): void {}

// Object overload: definitions are checked against the built-in options.
const common = defineModule({
  networking: { hostName: "aethelred" },
  services: { openssh: { enable: true, settings: { PermitRootLogin: "no", X11Forwarding: false } } },
  packages: ["htop"],
  virtualisation: { forwardPorts: [{ from: "host", host: { port: 2222 }, guest: { port: 22 } }] },
});
expectType<Equal<typeof common, ModuleObject | ModuleFunction>>();

// @ts-expect-error a string option given a number
defineModule({ networking: { hostName: 42 } });
// @ts-expect-error an option that does not exist
defineModule({ services: { opensh: { enable: true } } });
// @ts-expect-error an enum option given a value outside it
defineModule({ services: { openssh: { settings: { PermitRootLogin: "maybe" } } } });
// @ts-expect-error a list option given a single value
defineModule({ packages: "htop" });

// Properties wrap definitions at any depth.
defineModule({
  networking: { hostName: mkDefault("box") },
  packages: mkAfter(["vim"]),
  boot: mkIf(true, { kernelParams: ["quiet"] }),
  time: mkMerge([{ timeZone: "UTC" }, { timeZone: mkForce("Europe/London") }]),
});
// @ts-expect-error a property wrapping a value of the wrong type
defineModule({ networking: { hostName: mkDefault(1) } });

// Function overload: `config` is the resolved configuration, `lib` the helpers.
const reader = defineModule(({ config, lib }) => {
  expectType<Equal<typeof config.services.openssh.enable, boolean>>();
  expectType<Equal<typeof config.services.openssh.ports, readonly number[]>>();
  expectType<Equal<typeof config.networking.hostName, string>>();
  expectType<Equal<typeof config.boot.kernel.source, string | null>>();
  return {
    imports: [common],
    environment: { etc: { motd: { text: `Welcome to ${config.networking.hostName}` } } },
    packages: lib.mkIf(config.services.openssh.enable, ["openssh-client"]),
  };
});
expectType<Equal<typeof reader, ModuleObject | ModuleFunction>>();

// @ts-expect-error `config` is read-only
defineModule(({ config }) => ({ networking: { hostName: (config.networking.hostName = "x") } }));

// A module declaring options: `O` comes from `options` alone, and its own
// `config` sees them typed.
const greeter = defineModule({
  options: {
    greeting: {
      enable: mkOption({ type: types.bool, default: false, description: "Whether to greet." }),
      text: mkOption({ type: types.str, default: "hello", description: "The greeting." }),
    },
  },
  config: ({ config }) => {
    expectType<Equal<typeof config.greeting.text, string>>();
    return mkIf(config.greeting.enable, { environment: { etc: { greeting: { text: config.greeting.text } } } });
  },
});

// Option types carry the resolved and the written type.
const ports = mkOption({ type: types.listOf(types.port), default: [22], description: "Ports." });
expectType<Equal<NonNullable<(typeof ports)["type"]["_resolved"]>, readonly number[]>>();
const mode = mkOption({ type: types.enum(["a", "b"]), default: "a", description: "A mode." });
expectType<Equal<NonNullable<(typeof mode)["type"]["_resolved"]>, "a" | "b">>();
// @ts-expect-error a default outside the enum
mkOption({ type: types.enum(["a", "b"]), default: "c", description: "A mode." });
// @ts-expect-error a default of the wrong type
mkOption({ type: types.int, default: "1", description: "A number." });

// defineProject: an object, or a function (sync or async) returning one.
const project = defineProject({
  inputs: { linux: { type: "debian-source", package: "linux-source-6.1" } },
  systems: { common, reader, greeter, both: [common, reader] },
});
expectType<Equal<typeof project, ProjectSpec>>();
const lazy = defineProject(async () => ({ systems: { common } }));
expectType<Equal<typeof lazy, () => ProjectSpec | Promise<ProjectSpec>>>();
// @ts-expect-error an input of an unknown type
defineProject({ inputs: { linux: { type: "svn", url: "x" } }, systems: {} });
// @ts-expect-error systems are required
defineProject({ inputs: {} });

// Module-system keys and types after NixOS's: a freeform type, a module class,
// records made with attrsWith, boolByOr and raw, a default written as a getter.
defineModule({ freeformType: types.attrsOf(types.str), _class: "nixos" });
// @ts-expect-error a freeform type must be a type
defineModule({ freeformType: "attrsOf str" });
const tags = mkOption({ type: types.attrsWith({ elemType: types.int, lazy: true, placeholder: "tag" }), default: {}, description: "Tags." });
expectType<Equal<NonNullable<(typeof tags)["type"]["_resolved"]>, Readonly<Record<string, number>>>>();
const anyOn = mkOption({ type: types.boolByOr, default: false, description: "On if any module says so." });
expectType<Equal<NonNullable<(typeof anyOn)["type"]["_resolved"]>, boolean>>();
mkOption({ type: types.raw, default: { anything: [1, "x"] }, description: "Taken as it is." });
defineModule(({ config }) => ({
  options: { twice: mkOption({ type: types.int, get default() { return config.boot.kernelParams.length * 2; }, description: "Computed when read." }) },
}));
