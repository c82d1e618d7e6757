import { defineModule } from "../config/module.js";
import { mkOption } from "../config/option.js";
import { types } from "../config/types.js";

export const options = {
  assertions: mkOption({
    type: types.listOf(
      types.submodule({
        assertion: mkOption({ type: types.bool, description: "What must hold." }),
        message: mkOption({ type: types.str, description: "What to tell the user when it does not, including the fix." }),
        option: mkOption({
          type: types.nullOr(types.str),
          default: null,
          description: "The option (or part of one, `fileSystems.\"/\"`) the assertion is about: a failure names the files that define it.",
          example: "boot.kernel.source",
        }),
      }),
    ),
    default: [],
    description: "Conditions the configuration must meet; evaluation fails with each failed one's message.",
    example: [{ assertion: false, message: "boot.kernel.source names no input." }],
  }),
  warnings: mkOption({
    type: types.listOf(types.str),
    default: [],
    description: "Messages printed on every evaluation of the system.",
  }),
};

export default defineModule({ options });
