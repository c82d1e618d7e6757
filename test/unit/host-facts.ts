// Host facts for planning tests: a host with the seed's mirror and a small
// keel.lock pin of Debian (two packages and Debian's kernel).
import type { HostFacts } from "../../src/plan/plan.ts";

const deb = (name: string, version: string, digit: string) => ({ version, sha256: digit.repeat(64), size: 1000, filename: `pool/main/x/${name}/${name}_${version}_amd64.deb` });

export const testHost: HostFacts = {
  mirror: "http://deb.debian.org/debian",
  arch: "amd64",
  busybox: "b".repeat(64),
  files: {},
  debian: {
    suite: "bookworm",
    components: ["main"],
    arch: "amd64",
    date: "Sat, 14 Nov 2026 09:27:22 UTC",
    request: ["htop", "iproute2", "kmod", "systemd-resolved", "systemd-sysv", "udev"],
    packages: { htop: deb("htop", "3.2.2-2", "1"), "systemd-sysv": deb("systemd-sysv", "252.39-1~deb12u1", "2") },
    kernel: {
      package: "linux-image-amd64",
      image: "linux-image-6.1.0-50-amd64",
      packages: { "linux-image-amd64": deb("linux-image-amd64", "6.1.192-2", "3"), "linux-image-6.1.0-50-amd64": deb("linux-image-6.1.0-50-amd64", "6.1.192-2", "4") },
    },
  },
};
