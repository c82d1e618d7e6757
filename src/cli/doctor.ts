import { exec } from "../host/exec.js";
import { missingPackages, runDoctor, type Check } from "../host/doctor.js";
import { storeDir } from "../store/store.js";
import { defineCommand } from "./command.js";
import { storeOption } from "./planning.js";

const marks: Record<Check["status"], string> = { ok: "✓", fail: "✗", notice: "!" };

export const doctorCommand = defineCommand({
  name: "doctor",
  summary: "check that this machine can build and run keel systems",
  description:
    "Checks the programs keel runs (with the Debian package of each missing one), that mmdebstrap can\n" +
    "build from the mirror, that QEMU is present, and whether KVM works (by booting a kernel from the\n" +
    "store under it, with a timeout). For kernels it compiles hello.c twice through ccache with exactly\n" +
    "the environment keel builds kernels in (the cache: $KEEL_CCACHE_DIR, else $XDG_CACHE_HOME/keel/ccache),\n" +
    "expecting the second compile to hit, and runs Kbuild's compiler and assembler probes through it.\n" +
    "Exits 0 only when every check passes; KVM is a notice, not a failure.",
  positionals: [],
  options: {
    fix: { type: "boolean", description: "Install the missing Debian packages with apt-get (needs root)." },
    json: { type: "boolean", description: "Print the checks as JSON." },
    store: storeOption,
  },
  examples: [
    ["keel doctor", "Check this machine."],
    ["sudo keel doctor --fix", "Install what is missing, then check again."],
  ],
  async run(context, { values }) {
    const store = storeDir(context.env, values.store, context.cwd);
    let checks = await runDoctor(store, context.env);
    let missing = missingPackages(checks);
    if (values.fix && missing.length > 0) {
      context.out.stderr(`installing: ${missing.join(" ")}\n`);
      await exec(["apt-get", "install", "-y", ...missing], { env: { ...context.env, DEBIAN_FRONTEND: "noninteractive" }, onOutput: (t) => context.out.stderr(t) });
      checks = await runDoctor(store, context.env);
      missing = missingPackages(checks);
    }
    if (values.json) {
      context.out.stdout(`${JSON.stringify(checks, null, 2)}\n`);
    } else {
      const width = Math.max(...checks.map((c) => c.name.length));
      for (const c of checks) context.out.stdout(`${marks[c.status]} ${c.name.padEnd(width)}  ${c.detail}\n`);
      if (missing.length > 0) {
        context.out.stdout(`\nFix: apt-get install -y ${missing.join(" ")}   (or: keel doctor --fix)\n`);
      }
    }
    return checks.some((c) => c.status === "fail") ? 1 : 0;
  },
});
