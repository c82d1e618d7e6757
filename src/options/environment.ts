import { defineModule } from "../config/module.js";
import { mkOption } from "../config/option.js";
import { types } from "../config/types.js";

const etcFile = types.submodule({
  text: mkOption({
    type: types.nullOr(types.lines),
    default: null,
    description: "The file's contents. Exactly one of `text` and `source` is set.",
  }),
  source: mkOption({
    type: types.nullOr(types.path),
    default: null,
    description: "A file to copy; a relative path is taken from the module that defines it.",
  }),
  mode: mkOption({
    type: types.str,
    default: "0644",
    description: "The file's permissions, in octal.",
    example: "0600",
  }),
});

export const options = {
  environment: {
    etc: mkOption({
      type: types.attrsOf(etcFile),
      default: {},
      description: "Files placed under /etc in the root filesystem, by path relative to /etc.",
      example: { "motd": { text: "Welcome.\n" } },
    }),
  },
};

export default defineModule({
  options,
  config: ({ config }) => ({
    assertions: Object.entries(config.environment.etc).flatMap(([name, file]) => [
      {
        assertion: (file.text === null) !== (file.source === null),
        message: `environment.etc."${name}" must set exactly one of \`text' and \`source'.`,
      },
      {
        assertion: name !== "" && !name.startsWith("/") && !name.split("/").includes(".."),
        message: `environment.etc."${name}" must be a path inside /etc, relative and without "..", e.g. "ssh/sshd_config.d/local.conf".`,
      },
      {
        assertion: /^[0-7]{3,4}$/.test(file.mode),
        message: `environment.etc."${name}".mode is "${file.mode}"; give the permissions in octal, e.g. "0644".`,
      },
    ]),
  }),
});
