import { defineModule } from "../config/module.js";
import { mkOption } from "../config/option.js";
import { showValue } from "../config/show.js";
import { describeCharacter, types, type Refusal } from "../config/types.js";

/** What keel does instead of apt's `name=version`, `name:arch` and `name/suite`. */
const qualifierFix = {
  "=": "keel.lock pins its version",
  ":": "keel installs the system's architecture",
  "/": "`distro.suite` says the suite",
};

/** Debian Policy 5.6.1's package names; anything else reaches apt as a pattern, a version or nothing at all. */
const packageName = /^[a-z0-9][a-z0-9+.-]+$/;

function packageNameRefusal(name: string): Refusal | undefined {
  if (packageName.test(name)) return undefined;
  const bad = /[^a-z0-9+.-]/.exec(name)?.[0];
  let why: string;
  if (/\s/.test(name.trim())) why = "it has a space";
  else if (bad !== undefined) why = `it has ${/[A-Z]/.test(bad) ? "a capital letter" : describeCharacter(bad)}`;
  else if (name.length < 2) why = "it is shorter than two characters";
  else why = `it starts with ${describeCharacter(name[0] as string)}`;
  const words = name.trim().split(/\s+/).map((w) => w.toLowerCase());
  const [, alone, qualifier] = /^([A-Za-z0-9][A-Za-z0-9+.-]+)([=:/])/.exec(name.toLowerCase()) ?? [];
  let fix = 'name a package as `apt-cache search <word>` lists it, e.g. "vim-tiny".';
  if (words.length > 1) fix = `write each name without spaces; two packages are two entries of \`packages', e.g. ${showValue(words)}.`;
  else if (alone !== undefined) fix = `name the package alone, ${JSON.stringify(alone)}: ${qualifierFix[qualifier as keyof typeof qualifierFix]}.`;
  else if (packageName.test(name.toLowerCase())) fix = `write ${JSON.stringify(name.toLowerCase())}.`;
  return {
    problem: `is not a Debian package name: ${why}. A package name is at least two characters, lower-case letters, digits, "+", "-" and ".", starting with a letter or digit (Debian Policy 5.6.1).`,
    fix,
  };
}

export const debianPackageName = types.checked(types.str, packageNameRefusal, "Debian package name");

export const options = {
  packages: mkOption({
    type: types.listOf(debianPackageName),
    default: [],
    description: "Debian packages installed into the root filesystem. Lists from every module are joined.",
    example: ["htop", "vim"],
  }),
  distro: {
    suite: mkOption({
      type: types.str,
      default: "bookworm",
      description: "The Debian suite the root filesystem is built from.",
      example: "trixie",
    }),
    mirror: mkOption({
      type: types.nullOr(types.str),
      default: null,
      description: "The Debian mirror. `null` uses the mirror of the build host's apt sources.",
      example: "http://deb.debian.org/debian",
    }),
    components: mkOption({
      type: types.listOf(types.str),
      default: ["main"],
      description: "Archive components to use.",
      example: ["main", "contrib", "non-free-firmware"],
    }),
  },
};

export default defineModule({ options });
