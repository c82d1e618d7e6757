// aethelred's hardware: what the NixOS installer wrote to
// aethelred-hardware-configuration.nix, carried over by hand.
import { defineModule, mkDefault } from "keel";

export default defineModule({
  boot: {
    initrd: { availableKernelModules: ["xhci_pci", "ahci", "nvme", "usbhid", "usb_storage", "sd_mod"] },
    kernelModules: ["kvm-intel"],
  },
  fileSystems: {
    "/": { device: "/dev/disk/by-uuid/5c1e4f0a-8a53-4d4e-9a7b-2f3c6d1e0b9a", fsType: "ext4" },
    "/boot": { device: "/dev/disk/by-uuid/3A1B-7C2D", fsType: "vfat", options: ["fmask=0077", "dmask=0077"] },
  },
  swapDevices: [],
  networking: { useDHCP: mkDefault(true) },
});
