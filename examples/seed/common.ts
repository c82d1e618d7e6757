// What both machines share (the flake's common.nix).
import { defineModule } from "keel";

const brendanKeys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILNrVd+R0QrghnIwqkLrsDX+0KkkkeRoR8+HQYBICs5p brendan@laptop"];

export default defineModule({
  time: { timeZone: "Europe/London" },
  services: { openssh: { enable: true } },
  users: {
    users: {
      brendan: {
        isNormalUser: true,
        description: "Brendan",
        extraGroups: ["sudo"],
        openssh: { authorizedKeys: { keys: brendanKeys } },
      },
      root: { openssh: { authorizedKeys: { keys: brendanKeys } } },
    },
  },
  packages: ["ca-certificates", "less", "vim-tiny"],
});
