// The network: the host name (/etc/hostname, /etc/hosts) and systemd-networkd
// units (/etc/systemd/network/*.network), all written into environment.etc.
import { defineModule } from "../config/module.js";
import { mkOption, type ResolvedOf } from "../config/option.js";
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

/** Why a string is not an IPv4 address, if it is not one. */
function ipv4Problem(v: string): string | undefined {
  const parts = v.split(".");
  return parts.length === 4 && parts.every((n) => /^\d{1,3}$/.test(n) && Number(n) <= 255) ? undefined : "is not four numbers 0-255 joined by dots";
}

const ipv4 = types.strWith("IPv4 address (e.g. 192.168.2.3)", ipv4Problem);
const ipAddress = types.strWith("IP address (e.g. 192.168.2.1 or 2001:db8::1)", (v) =>
  v.includes(":") ? (/^[\dA-Fa-f:.]+$/.test(v) ? undefined : "is not an IPv6 address") : ipv4Problem(v),
);

const address = types.submodule({
  address: mkOption({ type: ipv4, description: "The IPv4 address.", example: "192.168.2.3" }),
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

/** Why a name is not a Linux interface name (at most 15 bytes, no / or whitespace), if it is not one. */
function interfaceNameProblem(name: string): string | undefined {
  if (name.length === 0 || name.length > 15) return "is not 1 to 15 characters long";
  if (!/^[\w.-]+$/.test(name) || name === "." || name === "..") return "holds characters other than letters, digits and _ . -";
  return undefined;
}

export const options = {
  networking: {
    hostName: mkOption({
      type: types.checked(types.str, hostNameRefusal, "host name"),
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
      type: types.attrsNamed({ description: 'an interface name (e.g. "enp3s0")', problem: interfaceNameProblem }, networkInterface),
      default: {},
      description: "Per-interface network configuration, by interface name.",
      example: { enp3s0: { ipv4: { addresses: [{ address: "192.168.2.3", prefixLength: 24 }] } } },
    }),
    defaultGateway: mkOption({
      type: types.nullOr(ipv4),
      default: null,
      description: "The default IPv4 gateway, for static configurations.",
      example: "192.168.2.1",
    }),
    nameservers: mkOption({
      type: types.listOf(ipAddress),
      default: [],
      description: "DNS servers, for static configurations.",
      example: ["192.168.2.1"],
    }),
  },
};

type Networking = ResolvedOf<typeof options>["networking"];

/** systemd-networkd units, by path under /etc: one per configured interface, and DHCP for the rest when networking.useDHCP. */
export function networkUnits(networking: Networking): Record<string, { text: string }> {
  const units: Record<string, { text: string }> = {};
  for (const [name, iface] of Object.entries(networking.interfaces)) {
    const dhcp = iface.useDHCP ?? (iface.ipv4.addresses.length === 0 && networking.useDHCP);
    const lines = ["[Match]", `Name=${name}`, "", "[Network]"];
    if (dhcp) lines.push("DHCP=yes");
    for (const a of iface.ipv4.addresses) lines.push(`Address=${a.address}/${a.prefixLength}`);
    if (iface.ipv4.addresses.length > 0 && networking.defaultGateway !== null) lines.push(`Gateway=${networking.defaultGateway}`);
    for (const dns of networking.nameservers) lines.push(`DNS=${dns}`);
    units[`systemd/network/10-keel-${name}.network`] = { text: `${lines.join("\n")}\n` };
  }
  if (networking.useDHCP) {
    units["systemd/network/99-keel-dhcp.network"] = { text: "[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n" };
  }
  return units;
}

export default defineModule({
  options,
  config: ({ config }) => ({
    environment: {
      // A getter: read only when environment.etc is merged.
      get etc() {
        const hostName = config.networking.hostName;
        return {
          hostname: { text: `${hostName}\n` },
          hosts: { text: `127.0.0.1\tlocalhost\n127.0.1.1\t${hostName}\n::1\tlocalhost ip6-localhost ip6-loopback\n` },
          ...networkUnits(config.networking),
        };
      },
    },
    systemd: {
      services: {
        // Debian's resolved is ordered before sysinit.target and network.target, so every service waits for it (seconds
        // under TCG) though none needs a resolver before nss-lookup.target, which it stays before.
        "systemd-resolved": { dropBefore: ["sysinit.target", "network.target"] },
      },
    },
  }),
});
