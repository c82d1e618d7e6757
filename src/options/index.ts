// The options every system has, and their static type for editor completion.
// The order of the modules is the order `keel eval` and `keel options` show.
import assertions, { options as assertionOptions } from "./assertions.js";
import deploy, { options as deployOptions } from "./deploy.js";
import environment, { options as environmentOptions } from "./environment.js";
import fileSystems, { options as fileSystemOptions } from "./fileSystems.js";
import kernel, { options as kernelOptions } from "./kernel.js";
import layout, { options as layoutOptions } from "./layout.js";
import networking, { options as networkingOptions } from "./networking.js";
import packages, { options as packageOptions } from "./packages.js";
import openssh, { options as opensshOptions } from "./services/openssh.js";
import systemd, { options as systemdOptions } from "./systemd.js";
import time, { options as timeOptions } from "./time.js";
import users, { options as userOptions } from "./users.js";
import virtualisation, { options as virtualisationOptions } from "./virtualisation.js";

export type BuiltinOptions = typeof networkingOptions &
  typeof timeOptions &
  typeof packageOptions &
  typeof kernelOptions &
  typeof fileSystemOptions &
  typeof userOptions &
  typeof opensshOptions &
  typeof systemdOptions &
  typeof environmentOptions &
  typeof layoutOptions &
  typeof virtualisationOptions &
  typeof deployOptions &
  typeof assertionOptions;

export const builtinModules = [
  networking,
  time,
  packages,
  kernel,
  fileSystems,
  users,
  openssh,
  systemd,
  environment,
  layout,
  virtualisation,
  deploy,
  assertions,
];

/** What only the VM variant of a system imports (`keel run`), as NixOS's qemu-vm.nix. */
export { vmModule } from "./qemu-vm.js";
