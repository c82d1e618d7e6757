// Inputs are the sources a project pins: kernel trees for now. A system names
// an input (`boot.kernel.source = "linux"`); keel.lock pins what it resolves to.
import { z } from "zod";

export const inputSpecSchema = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("debian-source"),
    /** A Debian package shipping a kernel tarball, e.g. `linux-source-6.1`. */
    package: z.string().regex(/^linux-source-[\w.+~-]+$/, "a Debian package name like `linux-source-6.1`"),
    /** A version of it (`apt-cache policy` lists them); without one, `keel lock` takes apt's candidate. */
    version: z.string().regex(/^[\w.+~:-]+$/, "a Debian version like `6.1.192-2`").optional(),
  }).strict(),
  z.object({
    type: z.literal("tarball"),
    /** An http(s) URL, or a path (relative to keel.config.ts). */
    url: z.string().min(1),
    sha256: z.string().regex(/^[0-9a-f]{64}$/, "64 lowercase hex digits").optional(),
  }).strict(),
  z.object({
    type: z.literal("git"),
    url: z.string().min(1),
    /** A branch, tag or commit; keel.lock pins the commit it names. */
    ref: z.string().min(1),
  }).strict(),
  z.object({
    type: z.literal("path"),
    /** A kernel tree used in place (relative to keel.config.ts): edits rebuild incrementally. */
    path: z.string().min(1),
  }).strict(),
]);

export type InputSpec = z.infer<typeof inputSpecSchema>;
