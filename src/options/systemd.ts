import { defineModule } from "../config/module.js";
import { mkOption } from "../config/option.js";
import { types } from "../config/types.js";

const unitValue = types.oneOf([types.bool, types.int, types.str, types.listOf(types.str)]);
const unitNames = (description: string) =>
  mkOption({ type: types.listOf(types.str), default: [], description });

const service = types.submodule({
  enable: mkOption({
    type: types.bool,
    default: true,
    description: "Whether the unit exists (for keel's own units) or is enabled (for units a package ships).",
  }),
  description: mkOption({ type: types.str, default: "", description: "The unit's Description=." }),
  wantedBy: unitNames("Targets that pull this unit in when enabled (WantedBy= in [Install]).") ,
  after: unitNames("Units this one starts after (After=)."),
  before: unitNames("Units this one starts before (Before=)."),
  wants: unitNames("Units this one pulls in (Wants=)."),
  requires: unitNames("Units this one needs (Requires=)."),
  environment: mkOption({
    type: types.attrsOf(types.str),
    default: {},
    description: "Environment variables of the service's processes.",
  }),
  script: mkOption({
    type: types.nullOr(types.lines),
    default: null,
    description: "A shell script run as the service (ExecStart=). `null` keeps the unit a package ships.",
    example: "echo hello",
  }),
  serviceConfig: mkOption({
    type: types.attrsOf(unitValue),
    default: {},
    description: "Settings of the [Service] section, by name.",
    example: { Type: "oneshot", RemainAfterExit: true },
  }),
  unitConfig: mkOption({
    type: types.attrsOf(unitValue),
    default: {},
    description: "Other settings of the [Unit] section, by name.",
  }),
});

export const options = {
  systemd: {
    services: mkOption({
      type: types.attrsOf(service),
      default: {},
      description:
        "systemd services, by unit name without `.service`. An entry with `script` or `serviceConfig.ExecStart` becomes a unit file; one without enables or extends the unit a package ships.",
      example: { hello: { wantedBy: ["multi-user.target"], script: "echo hello" } },
    }),
  },
};

export default defineModule({
  options,
  config: ({ config }) => ({
    assertions: Object.keys(config.systemd.services).map((name) => ({
      assertion: /^[\w:.@-]+$/.test(name) && !name.endsWith(".service"),
      message: `systemd.services."${name}": a unit name without ".service", of letters, digits and : _ . @ - (e.g. "hello" for hello.service).`,
    })),
  }),
});
