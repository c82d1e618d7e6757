// The physical machine in the office, on a custom kernel built from the
// project's `linux` input.
import { defineModule } from "keel";
import hardware from "./aethelred-hardware";
import common from "./common";

export default defineModule({
  imports: [common, hardware],
  boot: {
    kernel: {
      source: "linux",
      baseConfig: "debian",
      settings: { LOCALVERSION: "-aethelred" },
    },
    loader: {
      systemdBoot: { enable: true },
      efi: { canTouchEfiVariables: true },
    },
  },
  packages: ["build-essential", "git"],
  deploy: { targetHost: "root@192.168.2.3" },
});
