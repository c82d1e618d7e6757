import { defineModule } from "../config/module.js";
import { mkOption } from "../config/option.js";
import { types } from "../config/types.js";

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
      type: types.str,
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
