// Inputs are the sources a project pins: kernel trees for now. A system names
// an input (`boot.kernel.source = "linux"`); keel.lock pins what it resolves to.
import { z } from "zod";

export const inputSpecSchema = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("debian-source"),
    /** A Debian package shipping a kernel tarball, e.g. `linux-source-6.1`. */
    package: z.string().regex(/^linux-source-[\w.+~-]+$/, "a Debian package name like `linux-source-6.1`"),
  }).strict(),
  z.object({
    type: z.literal("tarball"),
    url: z.string().min(1),
    sha256: z.string().regex(/^[0-9a-f]{64}$/, "64 lowercase hex digits").optional(),
  }).strict(),
  z.object({
    type: z.literal("git"),
    url: z.string().min(1),
    ref: z.string().min(1),
  }).strict(),
  z.object({
    type: z.literal("path"),
    path: z.string().min(1),
  }).strict(),
]);

export type InputSpec = z.infer<typeof inputSpecSchema>;
