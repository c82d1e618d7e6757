// Where `keel deploy` ships a system. The command line overrides both.
import { defineModule } from "../config/module.js";
import { mkOption } from "../config/option.js";
import { types } from "../config/types.js";

export const options = {
  deploy: {
    targetHost: mkOption({
      type: types.nullOr(types.str),
      default: null,
      description: "The SSH destination the system is deployed to (`keel deploy --target-host` overrides it).",
      example: "root@192.168.2.3",
    }),
    sshOptions: mkOption({
      type: types.listOf(types.str),
      default: [],
      description: "Extra options for ssh and rsync (`keel deploy --ssh-opts` adds to them), as NIX_SSHOPTS did.",
      example: ["-p", "8022"],
    }),
  },
};

export default defineModule({ options });
