// zod's tree-shaken build (zod/mini: only the schemas keel uses are bundled, which
// keeps start-up fast), with the English messages zod/mini leaves out.
import { config } from "zod/mini";
import en from "zod/v4/locales/en.js";

config(en());

export * from "zod/mini";
