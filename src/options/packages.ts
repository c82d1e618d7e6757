import { defineModule } from "../config/module.js";
import { mkOption } from "../config/option.js";
import { types } from "../config/types.js";

export const options = {
  packages: mkOption({
    type: types.listOf(types.str),
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
