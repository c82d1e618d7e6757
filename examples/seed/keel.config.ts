// The seed flake, in keel: two systems built from one shared module.
//   keel run qemu          — the VM guest (flake: nix run .#nixosConfigurations.qemu.config.system.build.vm)
//   keel deploy aethelred  — the office machine (flake: nix run .#apps.x86_64-linux.rebuild-aethelred)
import { defineProject } from "keel";
import aethelred from "./aethelred";
import qemu from "./qemu";

export default defineProject({
  inputs: {
    // The kernel source is a pinned input (keel.lock), not hard-coded in a module:
    // switching kernel versions is this one line, then `keel update linux`.
    linux: { type: "debian-source", package: "linux-source-6.1" },
  },
  systems: { qemu, aethelred },
});
