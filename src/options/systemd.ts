// systemd services, and what they mean for the root filesystem, as NixOS's
// systemd.nix: each service is rendered into environment.etc — a unit file
// (systemd/system/<name>.service) for a service keel defines (a script or
// ExecStart), a drop-in (systemd/system/<name>.service.d/keel.conf) for one a
// package ships — and a service's script is a file of its own under /etc
// (keel/services/<name>-start). What the root filesystem's setup then does
// with each unit (enable, disable, add-wants) is `unitActions`.
import { defineModule } from "../config/module.js";
import { mkOption, type ResolvedOf } from "../config/option.js";
import { types } from "../config/types.js";

/** A value on one line of a unit file: a line break would start another setting, a final backslash joins the next line. */
const unitSetting = types.strWith("single-line systemd value", (v) =>
  /[\n\r]/.test(v) ? "holds a line break" : v.endsWith("\\") ? "ends with a backslash, which joins the next line to it" : undefined,
);

const unitSuffixes = ["service", "socket", "device", "mount", "automount", "swap", "target", "path", "timer", "slice", "scope"];

/** A full unit name, as After= and WantedBy= take it. */
const unitName = types.strWith("unit name (e.g. ssh.service)", (v) => {
  if (!/^[\w:.@\\-]+$/.test(v)) return "holds characters other than letters, digits and : _ . @ - \\";
  if (!unitSuffixes.some((suffix) => v.endsWith(`.${suffix}`) && v.length > suffix.length + 1)) return `does not end in a unit type (.${unitSuffixes.join(", .")})`;
  return undefined;
});

const unitValue = types.oneOf([types.bool, types.int, unitSetting, types.listOf(unitSetting)]);
const unitSettings = types.attrsNamed(
  { description: "a systemd setting name (e.g. Type)", problem: (n) => (/^[A-Za-z][A-Za-z0-9-]*$/.test(n) ? undefined : "holds characters other than letters, digits and -") },
  unitValue,
);
const unitNames = (description: string) => mkOption({ type: types.listOf(unitName), default: [], description });

const service = types.submodule({
  enable: mkOption({
    type: types.bool,
    default: true,
    description: "Whether the unit exists (for keel's own units) or is enabled (for units a package ships).",
  }),
  description: mkOption({ type: unitSetting, default: "", description: "The unit's Description=." }),
  wantedBy: unitNames("Targets that pull this unit in when enabled (WantedBy= in [Install])."),
  after: unitNames("Units this one starts after (After=)."),
  before: unitNames("Units this one starts before (Before=)."),
  dropBefore: unitNames(
    "Units a package's unit is ordered before (Before=) that it should not be: a drop-in cannot remove an ordering, so keel writes the package's unit to /etc/systemd/system without them.",
  ),
  dropAfter: unitNames("Units a package's unit is ordered after (After=) that it should not be; as dropBefore."),
  wants: unitNames("Units this one pulls in (Wants=)."),
  requires: unitNames("Units this one needs (Requires=)."),
  environment: mkOption({
    type: types.attrsNamed(
      { description: "an environment variable name", problem: (n) => (/^[A-Za-z_][A-Za-z0-9_]*$/.test(n) ? undefined : "holds characters other than letters, digits and _, or starts with a digit") },
      types.singleLineStr,
    ),
    default: {},
    description: "Environment variables of the service's processes.",
  }),
  script: mkOption({
    type: types.nullOr(types.lines),
    default: null,
    description: "A shell script run as the service (ExecStart=, from /etc/keel/services/<name>-start). `null` keeps the unit a package ships.",
    example: "echo hello",
  }),
  serviceConfig: mkOption({
    type: unitSettings,
    default: {},
    description: "Settings of the [Service] section, by name.",
    example: { Type: "oneshot", RemainAfterExit: true },
  }),
  unitConfig: mkOption({
    type: unitSettings,
    default: {},
    description: "Other settings of the [Unit] section, by name.",
  }),
});

export const options = {
  systemd: {
    services: mkOption({
      type: types.attrsNamed(
        {
          description: 'a unit name without ".service" (e.g. "hello" for hello.service)',
          problem: (n) => (n.endsWith(".service") ? 'ends in ".service", which keel adds' : /^[\w:.@-]+$/.test(n) ? undefined : "holds characters other than letters, digits and : _ . @ -"),
        },
        service,
      ),
      default: {},
      description:
        "systemd services, by unit name without `.service`. An entry with `script` or `serviceConfig.ExecStart` becomes a unit file; one without enables or extends the unit a package ships. Each becomes files in environment.etc.",
      example: { hello: { wantedBy: ["multi-user.target"], script: "echo hello" } },
    }),
  },
};

type Services = ResolvedOf<typeof options>["systemd"]["services"];
type Service = Services[string];
type UnitValue = Service["serviceConfig"][string];

function lineValues(value: UnitValue): string[] {
  if (typeof value === "boolean") return [value ? "yes" : "no"];
  if (Array.isArray(value)) return value.map(String);
  return [String(value)];
}

function section(name: string, settings: Readonly<Record<string, UnitValue>>): string[] {
  const lines = Object.entries(settings).flatMap(([key, value]) => lineValues(value).map((v) => `${key}=${v}`));
  return lines.length === 0 ? [] : [`[${name}]`, ...lines, ""];
}

/**
 * A value as systemd reads it back inside double quotes: it C-unescapes
 * backslashes and quotes and expands % specifiers, so those are doubled.
 */
export function systemdEscape(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("%", "%%");
}

/** Whether keel writes the whole unit (it says what to run) rather than extending a package's. */
function ownsUnit(service: Service): boolean {
  return service.script !== null || "ExecStart" in service.serviceConfig;
}

/** The path under /etc of a service's script. */
export const scriptPath = (name: string): string => `keel/services/${name}-start`;

/** The files under /etc that systemd.services become, by path relative to /etc. */
export function serviceFiles(services: Services): Record<string, { text: string; mode: string }> {
  const files: Record<string, { text: string; mode: string }> = {};
  for (const [name, service] of Object.entries(services)) {
    if (!service.enable) continue;
    const serviceConfig: Record<string, UnitValue> = { ...service.serviceConfig };
    if (service.script !== null) {
      files[scriptPath(name)] = { text: `#!/bin/sh\nset -e\n${service.script}\n`, mode: "0755" };
      serviceConfig.ExecStart = `/etc/${scriptPath(name)}`;
    }
    const environment = Object.entries(service.environment).map(([k, v]) => `"${systemdEscape(`${k}=${v}`)}"`);
    if (environment.length > 0) serviceConfig.Environment = environment;
    const unit: Record<string, UnitValue> = {
      ...(service.description ? { Description: service.description } : {}),
      ...(service.after.length ? { After: service.after } : {}),
      ...(service.before.length ? { Before: service.before } : {}),
      ...(service.wants.length ? { Wants: service.wants } : {}),
      ...(service.requires.length ? { Requires: service.requires } : {}),
      ...service.unitConfig,
    };
    if (ownsUnit(service)) {
      const install: Record<string, UnitValue> = service.wantedBy.length ? { WantedBy: service.wantedBy } : {};
      const text = [...section("Unit", unit), ...section("Service", serviceConfig), ...section("Install", install)].join("\n");
      files[`systemd/system/${name}.service`] = { text, mode: "0644" };
    } else {
      const text = [...section("Unit", unit), ...section("Service", serviceConfig)].join("\n");
      if (text) files[`systemd/system/${name}.service.d/keel.conf`] = { text, mode: "0644" };
    }
  }
  return files;
}

/** What the root filesystem's setup does with each unit, by full unit name. */
export interface UnitActions {
  readonly enable: readonly string[];
  readonly disable: readonly string[];
  /** A package's unit pulled in by a target: `systemctl add-wants <target> <unit>`. */
  readonly addWants: readonly (readonly [target: string, unit: string])[];
  /** A package's unit copied to /etc/systemd/system without some of its orderings. */
  readonly reorder: readonly { readonly unit: string; readonly before: readonly string[]; readonly after: readonly string[] }[];
}

/** Only what a service asks of systemctl: a unit with nothing to enable is not in it. */
export function unitActions(services: Services): UnitActions {
  const enable: string[] = [];
  const disable: string[] = [];
  const addWants: (readonly [string, string])[] = [];
  const reorder: UnitActions["reorder"][number][] = [];
  for (const [name, service] of Object.entries(services)) {
    const unit = `${name}.service`;
    if (!service.enable) disable.push(unit);
    else if (ownsUnit(service)) {
      if (service.wantedBy.length > 0) enable.push(unit);
    } else {
      for (const target of service.wantedBy) addWants.push([target, unit]);
      if (service.dropBefore.length + service.dropAfter.length > 0) reorder.push({ unit, before: service.dropBefore, after: service.dropAfter });
    }
  }
  return { enable, disable, addWants, reorder };
}

export default defineModule({
  options,
  // A getter: the files' names come from systemd.services, read only when environment.etc is merged.
  config: ({ config }) => ({
    environment: {
      get etc() {
        return serviceFiles(config.systemd.services);
      },
    },
  }),
});
