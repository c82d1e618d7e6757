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
      // x86_64 defconfig has aethelred's disk and USB controllers built in; NVMe and KVM come as modules.
      // ("debian" starts from Debian's full config instead: ~4000 modules, hours on two cores.)
      baseConfig: "defconfig",
      settings: { LOCALVERSION: "-aethelred", BLK_DEV_NVME: "m", KVM: "m", KVM_INTEL: "m" },
    },
    loader: {
      systemdBoot: { enable: true },
      efi: { canTouchEfiVariables: true },
    },
  },
  packages: ["build-essential", "git"],
  deploy: { targetHost: "root@192.168.2.3", tags: ["office"] },
  // A VM standing in for it (`keel run aethelred --firmware uefi --forward 8022:22`) gets its disk as NVMe, as the box has.
  virtualisation: { diskInterface: "nvme" },
});
