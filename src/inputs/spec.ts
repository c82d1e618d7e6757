// Inputs are the sources a project pins: kernel trees for now. A system names
// an input (`boot.kernel.source = "linux"`); keel.lock pins what it resolves to.
import * as z from "../schema.js";

export const inputSpecSchema = z.discriminatedUnion("type", [
  z.strictObject({
    type: z.literal("debian-source"),
    /** A Debian package shipping a kernel tarball, e.g. `linux-source-6.1`. */
    package: z.string().check(z.regex(/^linux-source-[\w.+~-]+$/, "a Debian package name like `linux-source-6.1`")),
    /** A version of it (`apt-cache policy` lists them); without one, `keel lock` takes apt's candidate. */
    version: z.optional(z.string().check(z.regex(/^[\w.+~:-]+$/, "a Debian version like `6.1.192-2`"))),
  }),
  z.strictObject({
    type: z.literal("tarball"),
    /** An http(s) URL, or a path (relative to keel.config.ts). */
    url: z.string().check(z.minLength(1)),
    sha256: z.optional(z.string().check(z.regex(/^[0-9a-f]{64}$/, "64 lowercase hex digits"))),
  }),
  z.strictObject({
    type: z.literal("git"),
    url: z.string().check(z.minLength(1)),
    /** A branch, tag or commit; keel.lock pins the commit it names. */
    ref: z.string().check(z.minLength(1)),
  }),
  z.strictObject({
    type: z.literal("path"),
    /** A kernel tree used in place (relative to keel.config.ts): edits rebuild incrementally. */
    path: z.string().check(z.minLength(1)),
  }),
]);

export type InputSpec = z.infer<typeof inputSpecSchema>;
