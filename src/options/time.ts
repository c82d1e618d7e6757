import { defineModule } from "../config/module.js";
import { mkOption } from "../config/option.js";
import { types } from "../config/types.js";

export const options = {
  time: {
    timeZone: mkOption({
      type: types.nullOr(
        types.strWith("time zone name (e.g. Europe/London)", (v) => (/^[\w+-]+(\/[\w+-]+)*$/.test(v) ? undefined : "is not a name from the tz database")),
      ),
      default: null,
      description: "The time zone, as a name from the tz database. `null` means UTC.",
      example: "Europe/London",
    }),
  },
};

export default defineModule({ options });
