// Debian pinned in keel.lock: reading what apt prints, when a system's pin is
// stale, what `keel update` reports, and the store's .debs (downloaded once,
// refused when they are not the pinned bytes) made into a local repository.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { describeMoves, kernelImageDependency, parseSimulation, parseStanzas, pinOf, releaseDate } from "../../src/inputs/debian.ts";
import { debianStaleness, lockText, pinnedDebian, readLock, type DebianPin, type DebianRequest, type PinnedDeb } from "../../src/inputs/lock.ts";
import { debPath, fetchDebs, localRepository, localRepositoryOptions, packagesStanza, pinnedIncludes, releaseFile, snapshotMirror } from "../../src/steps/debs.ts";

const scratch = mkdtempSync(path.join(os.tmpdir(), "keel-debian-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

const sha = (c: string): string => c.repeat(64);
const deb = (version: string, c = "a", name = "x"): PinnedDeb => ({ version, sha256: sha(c), size: 100, filename: `pool/main/${name[0]}/${name}/${name}_${version}_amd64.deb` });

const request: DebianRequest = { suite: "bookworm", components: ["main"], arch: "amd64", packages: ["openssh-server", "less", "kmod"], kernelPackage: "linux-image-amd64" };
const pin: DebianPin = {
  suite: "bookworm",
  components: ["main"],
  arch: "amd64",
  date: "Sat, 10 May 2025 09:42:01 UTC",
  request: ["kmod", "less", "openssh-server"],
  packages: { "openssh-server": deb("1:9.2p1-2+deb12u6"), less: deb("590-2.1~deb12u2", "b"), kmod: deb("30+20221128-1", "c") },
  kernel: { package: "linux-image-amd64", image: "linux-image-6.1.0-50-amd64", packages: { "linux-image-amd64": deb("6.1.176-1", "d"), "linux-image-6.1.0-50-amd64": deb("6.1.176-1", "e") } },
};

describe("what apt prints", () => {
  it("stanzas keep multi-line fields and skip blank lines", () => {
    const text = "Package: less\nVersion: 590-2.1~deb12u2\nDescription: pager\n more text\n .\n\n\nPackage: kmod\nSHA256: " + sha("c") + "\n";
    assert.deepEqual(parseStanzas(text), [
      { Package: "less", Version: "590-2.1~deb12u2", Description: "pager\nmore text\n." },
      { Package: "kmod", SHA256: sha("c") },
    ]);
  });

  it("the Date of an InRelease file, through its OpenPGP armour", () => {
    const inRelease = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nOrigin: Debian\nSuite: oldstable\nCodename: bookworm\nDate: Sat, 10 May 2025 09:42:01 UTC\nSHA256:\n 0123 12 main/Packages\n-----BEGIN PGP SIGNATURE-----\n\nxyz\n-----END PGP SIGNATURE-----\n";
    assert.equal(releaseDate(inRelease), "Sat, 10 May 2025 09:42:01 UTC");
    assert.equal(releaseDate("Suite: bookworm\nDate: Mon, 01 Jan 2024 00:00:00 UTC\n"), "Mon, 01 Jan 2024 00:00:00 UTC");
  });

  it("apt-get -s: one package and its exact version per Inst line", () => {
    const out = [
      "Inst gcc-12-base (12.2.0-14+deb12u1 Debian:12.15/oldstable [amd64])",
      "Conf gcc-12-base (12.2.0-14+deb12u1 Debian:12.15/oldstable [amd64])",
      "Inst libc6 (2.36-9+deb12u14 Debian:12.15/oldstable [amd64]) []",
      "Inst openssh-server [1:9.2p1-2+deb12u5] (1:9.2p1-2+deb12u6 Debian:12.15/oldstable [amd64])",
    ].join("\n");
    assert.deepEqual(parseSimulation(out), [
      { name: "gcc-12-base", version: "12.2.0-14+deb12u1" },
      { name: "libc6", version: "2.36-9+deb12u14" },
      { name: "openssh-server", version: "1:9.2p1-2+deb12u6" },
    ]);
  });

  it("a pin from an archive stanza; a kernel metapackage leads to its image", () => {
    const stanza = { Package: "less", Version: "590-2.1~deb12u2", Filename: "pool/main/l/less/less_590-2.1~deb12u2_amd64.deb", Size: "132464", SHA256: sha("b") };
    assert.deepEqual(pinOf(stanza), { version: "590-2.1~deb12u2", sha256: sha("b"), size: 132464, filename: "pool/main/l/less/less_590-2.1~deb12u2_amd64.deb" });
    assert.equal(kernelImageDependency("linux-image-6.1.0-50-amd64 (= 6.1.176-1)"), "linux-image-6.1.0-50-amd64");
    assert.equal(kernelImageDependency("kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool"), undefined);
  });
});

describe("a system's pin in keel.lock", () => {
  const file = path.join(scratch, "keel.lock");
  const lock = { version: 1 as const, inputs: {}, systems: { qemu: { debian: pin } } };

  it("a version 1 file from before systems were pinned still reads", () => {
    writeFileSync(file, JSON.stringify({ version: 1, inputs: {} }));
    assert.deepEqual(readLock(file), { version: 1, inputs: {} });
  });

  it("is written sorted and read back as it was", () => {
    writeFileSync(file, lockText(lock));
    assert.deepEqual(readLock(file), lock);
    assert.deepEqual(Object.keys(JSON.parse(readFileSync(file, "utf8")).systems.qemu.debian.packages), ["kmod", "less", "openssh-server"]);
  });

  it("a pin that is not valid names the field", () => {
    writeFileSync(file, JSON.stringify({ ...lock, systems: { qemu: { debian: { ...pin, packages: { less: { ...deb("1"), filename: "less.deb" } } } } } }));
    assert.throws(() => readLock(file), {
      message: `\`${file}' is not a valid keel.lock:\n- systems.qemu.debian.packages.less.filename: a path in the archive like pool/main/…/x.deb\nFix: restore it from version control, or delete it and run \`keel lock\`.`,
    });
  });

  it("answers the same request whatever the mirror and the order of packages", () => {
    assert.equal(debianStaleness({ ...request, packages: ["less", "kmod", "openssh-server", "less"] }, pin), undefined);
    assert.equal(pinnedDebian("qemu", request, lock, file), pin);
  });

  it("is stale when the packages, suite, components, architecture or kernel differ", () => {
    assert.equal(debianStaleness(request, undefined), "does not pin its Debian packages yet");
    assert.equal(debianStaleness({ ...request, packages: ["kmod", "openssh-server", "htop"] }, pin), "pins its Debian packages for another package list (now +htop -less)");
    assert.equal(debianStaleness({ ...request, suite: "trixie" }, pin), "pins its Debian packages for the suite bookworm, but keel.config.ts now asks for trixie");
    assert.equal(debianStaleness({ ...request, components: ["main", "contrib"] }, pin), "pins its Debian packages for the components main, but keel.config.ts now asks for main contrib");
    assert.equal(debianStaleness({ ...request, arch: "arm64" }, pin), "pins its Debian packages for the architecture amd64, but keel.config.ts now asks for arm64");
    const { kernelPackage: _, ...withoutKernel } = request;
    assert.equal(debianStaleness(withoutKernel, pin), "pins the Debian kernel linux-image-amd64, which the system no longer uses");
    assert.equal(debianStaleness({ ...request, kernelPackage: "linux-image-rt-amd64" }, pin), "pins its Debian packages for the kernel linux-image-amd64, but keel.config.ts now asks for linux-image-rt-amd64");
  });

  it("a build of a system keel.lock does not pin is refused with the fix", () => {
    assert.throws(() => pinnedDebian("aethelred", request, lock, file), {
      message: `The system \`aethelred' is not pinned: \`${file}' does not pin its Debian packages yet.\nFix: run \`keel lock\` (pins what is missing or stale) or \`keel update aethelred\` (pins it anew), and commit keel.lock.`,
    });
  });
});

describe("what keel update reports", () => {
  it("moved, added and removed packages, one line each; nothing when nothing moved", () => {
    const after: DebianPin = {
      ...pin,
      packages: { "openssh-server": deb("1:9.2p1-2+deb12u7"), kmod: deb("30+20221128-1", "c"), htop: deb("3.2.2-2", "f") },
      kernel: { ...(pin.kernel as NonNullable<DebianPin["kernel"]>), packages: { "linux-image-amd64": deb("6.1.176-1", "9"), "linux-image-6.1.0-50-amd64": deb("6.1.176-1", "e") } },
    };
    assert.deepEqual(describeMoves("qemu", pin, after), [
      "qemu: added htop 3.2.2-2",
      "qemu: removed less 590-2.1~deb12u2",
      `qemu: linux-image-amd64 6.1.176-1 has other bytes (sha256 ${sha("d").slice(0, 12)}… → ${sha("9").slice(0, 12)}…)`,
      "qemu: openssh-server 1:9.2p1-2+deb12u6 → 1:9.2p1-2+deb12u7",
    ]);
    assert.deepEqual(describeMoves("qemu", pin, pin), []);
    assert.deepEqual(describeMoves("qemu", undefined, pin), [
      "qemu: pinned 3 Debian packages from bookworm (Release of Sat, 10 May 2025 09:42:01 UTC)",
      "qemu: kernel linux-image-6.1.0-50-amd64 6.1.176-1",
    ]);
  });
});

/** A real .deb with a control file, and its pin. */
function buildDeb(name: string, version: string): { bytes: Buffer; pin: PinnedDeb } {
  const root = path.join(scratch, `${name}-${version}`);
  mkdirSync(path.join(root, "DEBIAN"), { recursive: true });
  writeFileSync(path.join(root, "DEBIAN/control"), `Package: ${name}\nVersion: ${version}\nArchitecture: all\nMaintainer: keel <keel@example.org>\nPriority: optional\nDescription: test\n a package for tests\n`);
  execFileSync("dpkg-deb", ["--build", "--root-owner-group", root, `${root}.deb`], { stdio: "ignore" });
  const bytes = readFileSync(`${root}.deb`);
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  return { bytes, pin: { version, sha256, size: bytes.length, filename: `pool/main/${name[0]}/${name}/${name}_${version}_all.deb` } };
}

describe("the store's .debs and the local repository", () => {
  const served = new Map<string, Buffer>();
  const requests: string[] = [];
  let server: Server;
  let mirror: string;
  const one = buildDeb("keel-one", "1.0-1");
  const two = buildDeb("keel-two", "2:2.0-1");
  before(async () => {
    server = createServer((request, response) => {
      requests.push(request.url ?? "");
      const body = served.get(request.url ?? "");
      response.writeHead(body === undefined ? 404 : 200).end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    mirror = `http://127.0.0.1:${(server.address() as AddressInfo).port}/debian`;
    served.set(`/debian/${one.pin.filename}`, one.bytes);
    served.set(`/debian/${two.pin.filename}`, two.bytes);
  });
  after(() => server.close());

  it("downloads each pinned .deb once into the store, by its sha256", async () => {
    const debs = path.join(scratch, "store1/debs");
    const packages = { "keel-one": one.pin, "keel-two": two.pin };
    assert.deepEqual(await fetchDebs(debs, mirror, packages), { fetched: 2, cached: 0, bytes: one.bytes.length + two.bytes.length });
    assert.deepEqual(readFileSync(debPath(debs, one.pin.sha256)), one.bytes);
    requests.length = 0;
    assert.deepEqual(await fetchDebs(debs, "http://127.0.0.1:1/debian", packages), { fetched: 0, cached: 2, bytes: 0 }, "a rebuild needs no mirror");
    assert.deepEqual(requests, []);

    const repo = path.join(scratch, "repo");
    await localRepository(repo, debs, packages, { suite: "bookworm", arch: "amd64", date: pin.date });
    const stanzas = parseStanzas(readFileSync(path.join(repo, "Packages"), "utf8"));
    assert.deepEqual(stanzas.map((s) => [s.Package, s.Version, s.Filename, s.Size, s.SHA256]), [
      ["keel-one", "1.0-1", "./keel-one_1.0-1_all.deb", String(one.bytes.length), one.pin.sha256],
      ["keel-two", "2:2.0-1", "./keel-two_2:2.0-1_all.deb", String(two.bytes.length), two.pin.sha256],
    ]);
    assert.equal(stanzas[0]?.Description, "test\na package for tests");
    assert.equal(statSync(path.join(repo, "keel-one_1.0-1_all.deb")).ino, statSync(debPath(debs, one.pin.sha256)).ino, "a hard link, not a copy");
    const release = parseStanzas(readFileSync(path.join(repo, "Release"), "utf8"))[0];
    assert.equal(release?.Suite, "bookworm");
    assert.equal(release?.Codename, "bookworm");
    assert.match(release?.SHA256 ?? "", /^\n[0-9a-f]{64} \d+ Packages$/);
  });

  it("bytes that are not the pinned ones are refused with both hashes, and not kept", async () => {
    const debs = path.join(scratch, "store2/debs");
    const wrong = { ...one.pin, sha256: sha("0") };
    await assert.rejects(fetchDebs(debs, mirror, { "keel-one": wrong }), {
      message:
        `The package keel-one 1.0-1 from ${mirror}/${one.pin.filename} has sha256 ${one.pin.sha256}, but keel.lock pins ${sha("0")}.\n` +
        "Fix: if the mirror now serves other bytes under that version, `keel update keel-one` pins them; otherwise the download was corrupted or altered on the way — build again, or use another distro.mirror.",
    });
    assert.deepEqual(readdirSync(debs), [], "no partial download is left");
  });

  it("a version gone from the mirror is named with the fixes", async () => {
    const gone = { ...one.pin, version: "0.9-1", filename: "pool/main/k/keel-one/keel-one_0.9-1_all.deb" };
    await assert.rejects(fetchDebs(path.join(scratch, "store3/debs"), mirror, { "keel-one": gone }, undefined, pin.date), {
      message:
        `The Debian mirror ${mirror} no longer has keel-one 0.9-1 (HTTP 404 for pool/main/k/keel-one/keel-one_0.9-1_all.deb), which keel.lock pins.\n` +
        "Fix: run `keel update keel-one` to pin the mirror's current version, or set distro.mirror to http://snapshot.debian.org/archive/debian/20250510T094201Z, which still serves the pinned one.",
    });
  });

  it("a mirror that cannot be reached is named", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const nobody = `http://127.0.0.1:${(closed.address() as AddressInfo).port}/debian`;
    await new Promise((resolve) => closed.close(resolve));
    await assert.rejects(fetchDebs(path.join(scratch, "store4/debs"), nobody, { "keel-one": one.pin }), {
      message:
        `The Debian mirror ${nobody} cannot be reached (ECONNREFUSED) to download keel-one 1.0-1, which the store does not have yet.\n` +
        "Fix: check that this machine reaches the mirror, or set distro.mirror to one it reaches.",
    });
  });
});

describe("mmdebstrap from the local repository", () => {
  it("the repository is copied into the chroot, used alone, and the system's sources line put back", () => {
    assert.deepEqual(localRepositoryOptions("/store/tmp/my repo"), [
      '--setup-hook=mkdir -p "$1"/var/lib/keel-repository',
      "--setup-hook=sync-in '/store/tmp/my repo' /var/lib/keel-repository",
      '--setup-hook=mv "$1/etc/apt/sources.list" "$1"/var/lib/keel-repository.sources && echo "deb [trusted=yes] copy://$1/var/lib/keel-repository ./" > "$1/etc/apt/sources.list"',
      '--customize-hook=mv "$1"/var/lib/keel-repository.sources "$1/etc/apt/sources.list" && rm -rf "$1"/var/lib/keel-repository',
    ]);
  });

  it("includes every pinned package, so the set does not depend on the .debs' own priorities", () => {
    assert.deepEqual(pinnedIncludes(pin.packages), ["kmod", "less", "openssh-server"]);
  });

  it("a Packages stanza replaces the location fields; a Release names its Packages", () => {
    assert.equal(packagesStanza("Package: a\nVersion: 1\nSize: 3\n", "./a_1_all.deb", deb("1")), `Package: a\nVersion: 1\nFilename: ./a_1_all.deb\nSize: 100\nSHA256: ${sha("a")}`);
    const hash = createHash("sha256").update("P").digest("hex");
    assert.equal(releaseFile("bookworm", "amd64", "D", "P"), `Suite: bookworm\nCodename: bookworm\nDate: D\nArchitectures: amd64\nSHA256:\n ${hash} 1 Packages\n`);
    assert.equal(snapshotMirror("Sat, 10 May 2025 09:42:01 UTC"), "http://snapshot.debian.org/archive/debian/20250510T094201Z");
  });
});

