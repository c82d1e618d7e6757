import { defineModule } from "../config/module.js";
import { mkOption } from "../config/option.js";
import { describeCharacter, types, type Refusal } from "../config/types.js";

/** NixOS's rule for a host name: one DNS label (RFC 1123), so that hostname(1), DHCP and /etc/hosts take it. */
function hostNameRefusal(name: string): Refusal | undefined {
  const bad = /[^A-Za-z0-9-]/.exec(name)?.[0];
  let why: string | undefined;
  if (name === "") why = "it is empty";
  else if (bad === ".") why = "it has a dot (a host name has no domain part)";
  else if (bad !== undefined) why = `it has ${describeCharacter(bad)}`;
  else if (name.length > 63) why = `it is ${name.length} characters long`;
  else if (name.startsWith("-") || name.endsWith("-")) why = `it ${name.startsWith("-") ? "starts" : "ends"} with a hyphen`;
  if (why === undefined) return undefined;
  const suggestion = name.split(".")[0]?.replace(/[^A-Za-z0-9]+/g, "-").slice(0, 63).replace(/^-+|-+$/g, "") || "web-1";
  return {
    problem: `is not a host name: ${why}. A host name is 1 to 63 letters, digits and hyphens, and does not start or end with a hyphen (RFC 1123).`,
    fix: `set \`networking.hostName' to such a name, e.g. ${JSON.stringify(suggestion)}.`,
  };
}

const address = types.submodule({
  address: mkOption({ type: types.str, description: "The IPv4 address.", example: "192.168.2.3" }),
  prefixLength: mkOption({ type: types.ints.between(0, 32), description: "The prefix length of the subnet.", example: 24 }),
});

const networkInterface = types.submodule({
  useDHCP: mkOption({
    type: types.nullOr(types.bool),
    default: null,
    description: "Whether this interface gets its address by DHCP. `null` follows `networking.useDHCP` when the interface has no static address.",
  }),
  ipv4: {
    addresses: mkOption({
      type: types.listOf(address),
      default: [],
      description: "Static IPv4 addresses of this interface.",
      example: [{ address: "192.168.2.3", prefixLength: 24 }],
    }),
  },
});

export const options = {
  networking: {
    hostName: mkOption({
      type: types.checked(types.str, hostNameRefusal),
      description: "The machine's host name. Defaults to the system's name in `defineProject({ systems })`.",
      defaultText: "the system's name",
      example: "aethelred",
    }),
    useDHCP: mkOption({
      type: types.bool,
      default: true,
      description: "Whether interfaces without a static address get one by DHCP (systemd-networkd).",
    }),
    interfaces: mkOption({
      type: types.attrsOf(networkInterface),
      default: {},
      description: "Per-interface network configuration, by interface name.",
      example: { enp3s0: { ipv4: { addresses: [{ address: "192.168.2.3", prefixLength: 24 }] } } },
    }),
    defaultGateway: mkOption({
      type: types.nullOr(types.str),
      default: null,
      description: "The default IPv4 gateway, for static configurations.",
      example: "192.168.2.1",
    }),
    nameservers: mkOption({
      type: types.listOf(types.str),
      default: [],
      description: "DNS servers, for static configurations.",
      example: ["192.168.2.1"],
    }),
  },
};

export default defineModule({ options });
