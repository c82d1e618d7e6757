// The kernel: Debian's prebuilt one, or one built from a source input with a
// config assembled from a base, fragments and single settings.
import { defineModule } from "../config/module.js";
import { mkOption } from "../config/option.js";
import { mkIf } from "../config/properties.js";
import { showValue } from "../config/show.js";
import { describeCharacter, types, type Refusal } from "../config/types.js";
import { debianPackageName } from "./packages.js";

const controlCharacter = /\p{Cc}/u;

/** A string setting becomes one quoted .config line (src/steps/kconfig.ts), which a control character breaks. */
function settingStringRefusal(value: string): Refusal | undefined {
  const bad = controlCharacter.exec(value)?.[0];
  if (bad === undefined) return undefined;
  return {
    problem: `is a string with ${describeCharacter(bad)}, which a .config line cannot hold.`,
    fix: "give the setting a one-line value of printable characters.",
  };
}

/** Kconfig symbols as boot.kernel.settings names them: capital letters, digits and _, without the CONFIG_ that keel adds. */
function settingNamesRefusal(settings: Readonly<Record<string, unknown>>): Refusal | undefined {
  for (const name of Object.keys(settings)) {
    const bare = name.replace(/^CONFIG_/i, "");
    if (bare === name && /^[A-Z0-9_]+$/.test(name)) continue;
    const suggestion = bare.toUpperCase().replace(/[^A-Z0-9_]+/g, "_");
    return {
      problem:
        bare === name
          ? `names the setting \`${name}', which is not a Kconfig symbol: those are capital letters, digits and _.`
          : `names the setting \`${name}' with the \`CONFIG_' prefix, which keel adds itself.`,
      fix:
        suggestion === ""
          ? "name the setting as its Kconfig file declares it (`config VIRTIO_BLK` is `VIRTIO_BLK`)."
          : `write \`${suggestion}' instead of \`${name}'.`,
    };
  }
  return undefined;
}

/** The kernel command line is parameters separated by spaces; a double quote runs to the next one. */
function kernelParamRefusal(param: string): Refusal | undefined {
  const bad = controlCharacter.exec(param)?.[0];
  let why: string | undefined;
  let fix = "remove the empty entry.";
  if (param.trim() === "") why = "it is empty";
  else if (bad !== undefined) {
    why = `it has ${describeCharacter(bad)}`;
    fix = `give each parameter its own entry, e.g. ${showValue(param.split(/[\s\p{Cc}]+/u).filter((p) => p !== ""))}.`;
  } else if ((param.match(/"/g) ?? []).length % 2 === 1) {
    why = "its double quote is not closed, so the kernel would take every parameter after it as part of this one";
    fix = "close the quote, e.g. `foo=\"a b\"`.";
  }
  if (why === undefined) return undefined;
  return {
    problem: `is not a kernel parameter: ${why}. A parameter is printable characters, like "console=ttyS0" or "quiet"; a value with spaces is quoted (foo="a b").`,
    fix,
  };
}

const kernelSetting = types.oneOf([types.enum(["y", "m", "n"]), types.checked(types.str, settingStringRefusal), types.int]);

/** The named bases of a source kernel's config; anything else in boot.kernel.baseConfig is a file. */
const namedBaseConfigs = ["defconfig", "tinyconfig", "debian"] as const;

export function isNamedBaseConfig(baseConfig: string): boolean {
  return (namedBaseConfigs as readonly string[]).includes(baseConfig);
}

const moduleName = types.strWith("kernel module name (e.g. kvm-intel)", (v) => (/^[\w-]+$/.test(v) ? undefined : "holds characters other than letters, digits, _ and -"));

export const options = {
  boot: {
    kernel: {
      source: mkOption({
        type: types.nullOr(types.str),
        default: null,
        description:
          "The name of a project input holding a kernel source tree (see `inputs` in keel.config.ts). `null` uses Debian's prebuilt kernel, `boot.kernel.debianPackage`.",
        example: "linux",
      }),
      debianPackage: mkOption({
        type: debianPackageName,
        default: "linux-image-amd64",
        description: "The Debian kernel package used when `boot.kernel.source` is null; a versioned name pins a version.",
        example: "linux-image-6.1.0-28-amd64",
      }),
      baseConfig: mkOption({
        type: types.oneOf([types.enum(namedBaseConfigs), types.path]),
        default: "defconfig",
        description:
          "Where a source kernel's .config starts: `defconfig`, `tinyconfig` (Kbuild's targets), `debian` (the config of Debian's prebuilt kernel, boot.kernel.debianPackage), or a path to a config file.",
        example: "tinyconfig",
      }),
      configFragments: mkOption({
        type: types.listOf(types.path),
        default: [],
        description: "Kconfig fragments merged onto the base config in order (merge_config.sh).",
        example: ["./kvm-guest.config"],
      }),
      settings: mkOption({
        type: types.checked(types.attrsOf(kernelSetting), settingNamesRefusal),
        default: {},
        description:
          'Single Kconfig settings applied last, without the `CONFIG_` prefix: "y", "m", "n", a number, or a string (a hex value like "0x1000" is written unquoted). Each is checked after olddefconfig; one that does not stick is an error naming what it depends on.',
        example: { VIRTIO_BLK: "y", LOCALVERSION: "-keel" },
      }),
    },
    kernelParams: mkOption({
      type: types.listOf(types.checked(types.str, kernelParamRefusal, "kernel parameter")),
      default: [],
      description: "Parameters on the kernel command line.",
      example: ["console=ttyS0", "quiet"],
    }),
    kernelModules: mkOption({
      type: types.listOf(moduleName),
      default: [],
      description: "Kernel modules loaded by the booted system (systemd-modules-load, from /etc/modules-load.d/keel.conf).",
      example: ["kvm-intel"],
    }),
    initrd: {
      availableKernelModules: mkOption({
        type: types.listOf(types.str),
        default: [],
        description: "Kernel modules put into the initrd and loaded when hardware needs them to find the root file system.",
        example: ["virtio_blk", "virtio_pci", "nvme", "ahci"],
      }),
      kernelModules: mkOption({
        type: types.listOf(types.str),
        default: [],
        description: "Kernel modules the initrd always loads.",
        example: ["dm_mod"],
      }),
    },
    loader: {
      systemdBoot: {
        enable: mkOption({
          type: types.bool,
          default: false,
          description: "Whether disk images and installs boot through systemd-boot (Boot Loader Spec entries, boot counting).",
        }),
      },
      timeout: mkOption({
        type: types.ints.unsigned,
        default: 3,
        description: "Seconds the boot menu waits before booting the default entry.",
      }),
      efi: {
        canTouchEfiVariables: mkOption({
          type: types.bool,
          default: false,
          description: "Whether installing may write EFI variables (register the boot loader in the firmware).",
        }),
      },
    },
  },
};

export default defineModule({
  options,
  config: ({ config, inputs }) => ({
    environment: {
      get etc() {
        const modules = config.boot.kernelModules;
        return mkIf(modules.length > 0, { "modules-load.d/keel.conf": { text: `${modules.join("\n")}\n` } });
      },
    },
    assertions: [
      {
        assertion: config.boot.kernel.source === null || config.boot.kernel.source in inputs,
        message:
          `boot.kernel.source is "${config.boot.kernel.source}", which is not an input of this project (inputs: ${Object.keys(inputs).join(", ") || "none"}). ` +
          "Add it to `inputs` in keel.config.ts or name an existing one.",
        option: "boot.kernel.source",
      },
      {
        assertion: config.boot.kernel.source !== null || Object.keys(config.boot.kernel.settings).length === 0,
        message:
          "boot.kernel.settings is set, but boot.kernel.source is null (Debian's prebuilt kernel cannot be reconfigured). Set boot.kernel.source to a kernel source input.",
        option: "boot.kernel.settings",
      },
    ],
  }),
});
