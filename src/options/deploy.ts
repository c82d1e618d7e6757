// Where `keel deploy` ships a system, how it judges the new generation, and
// what the machine does by itself on a trial boot (see ARCHITECTURE.md,
// "Deploying"): a trial that keel does not confirm in time reboots into the
// previous generation, a panic reboots, a hung machine is reset by the
// watchdog. keel, not systemd's own boot assessment, blesses an entry.
import { defineModule } from "../config/module.js";
import { mkOption } from "../config/option.js";
import { mkIf } from "../config/properties.js";
import { strWith, types } from "../config/types.js";

const healthCheck = types.submodule({
  command: mkOption({
    type: types.nullOr(types.str),
    default: null,
    description: "A shell command run as root on the machine; exit code 0 is healthy.",
    example: "pg_isready",
  }),
  http: mkOption({
    type: types.nullOr(types.singleLineStr),
    default: null,
    description: "A URL fetched on the machine (with curl, which the system must have); a 2xx or 3xx answer is healthy.",
    example: "http://127.0.0.1:8080/health",
  }),
  tcp: mkOption({
    type: types.nullOr(types.port),
    default: null,
    description: "A TCP port on the machine's 127.0.0.1 that must accept a connection.",
    example: 5432,
  }),
  timeout: mkOption({ type: types.ints.positive, default: 30, description: "Seconds the check may take (it is retried until then)." }),
});

/** A tag as `--on @tag` names it. */
const tagName = strWith("tag", (v) => (/^[\w.-]+$/.test(v) ? undefined : "has characters other than letters, digits, _, . and -"));

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
      description: "Extra options for ssh and rsync (KEEL_SSHOPTS and `keel deploy --ssh-opts` add to them), as NIX_SSHOPTS did.",
      example: ["-p", "8022"],
    }),
    tags: mkOption({
      type: types.listOf(tagName),
      default: [],
      description: "Names for groups of machines: `keel deploy --on @office` deploys every system tagged office.",
      example: ["office", "x86"],
    }),
    confirmTimeout: mkOption({
      type: types.ints.positive,
      default: 120,
      description:
        "Seconds a trial boot waits for keel's confirmation before the machine reboots into the previous generation by itself (keel lost, the network down, sshd not answering).",
    }),
    essentialUnits: mkOption({
      type: types.listOf(types.str),
      default: ["ssh.service"],
      description: "Units that must be active after a trial boot; any other failed unit is reported but does not fail the deploy.",
      example: ["ssh.service", "nginx.service"],
    }),
    healthChecks: mkOption({
      type: types.attrsOf(healthCheck),
      default: {},
      description: "Checks a trial boot must pass before it becomes the default, by name: each a command, an HTTP URL or a TCP port.",
      example: { web: { http: "http://127.0.0.1/" } },
    }),
    watchdogSec: mkOption({
      type: types.ints.unsigned,
      default: 60,
      description: "systemd's hardware watchdog (RuntimeWatchdogSec=): a machine hung this long is reset. 0 turns it off. It needs a watchdog device (QEMU: -device i6300esb).",
    }),
  },
};

export default defineModule({
  options,
  config: ({ config }) => ({
    assertions: Object.entries(config.deploy.healthChecks).map(([name, check]) => ({
      assertion: [check.command, check.http, check.tcp].filter((v) => v !== null).length === 1,
      message: `deploy.healthChecks.${name} must name exactly one of command, http and tcp.`,
      option: `deploy.healthChecks.${name}`,
    })),
    environment: {
      etc: {
        "systemd/system.conf.d/keel-watchdog.conf": mkIf(config.deploy.watchdogSec > 0, { text: `[Manager]\nRuntimeWatchdogSec=${config.deploy.watchdogSec}s\n` }),
      },
    },
    systemd: {
      services: {
        // keel blesses a trial entry once its checks pass; systemd's own assessment would on boot-complete.target alone.
        "systemd-bless-boot": { unitConfig: { ConditionKernelCommandLine: "!keel.trial" } },
        "keel-trial": {
          description: "Reboot into the previous generation unless keel confirms this trial boot",
          wantedBy: ["sysinit.target"],
          // From the start of the boot, and kept when emergency.target is isolated: a broken boot must reboot too.
          unitConfig: { DefaultDependencies: false, ConditionKernelCommandLine: "keel.trial", IgnoreOnIsolate: true },
          serviceConfig: { Type: "simple" },
          script: [
            `sleep ${config.deploy.confirmTimeout}`,
            "[ -e /run/keel/confirmed ] && exit 0",
            `echo "keel: this trial boot was not confirmed within ${config.deploy.confirmTimeout} s; rebooting into the previous generation" > /dev/kmsg`,
            // A shutdown that hangs is cut short by the watchdog (RebootWatchdogSec=, 10 min).
            "systemctl --no-block reboot",
          ].join("\n"),
        },
      },
    },
  }),
});
