import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

// package.json is one directory up from both src/version.ts and dist/version.js.
const packageJson = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };

export const keelVersion: string = packageJson.version;

/** The directory keel is installed in (it holds package.json, src/ and dist/). */
export const keelRoot: string = fileURLToPath(new URL("../", import.meta.url));
