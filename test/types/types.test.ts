// Runs the type-level tests in define.test-d.ts through the TypeScript compiler:
// an expected error that stops happening, or an inferred type that changes,
// fails here as a diagnostic.
import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const root = fileURLToPath(new URL("../../", import.meta.url));

test("defineModule, defineProject, mkOption and types infer and reject what the editor shows", () => {
  const configPath = path.join(root, "tsconfig.json");
  const { config } = ts.readConfigFile(configPath, ts.sys.readFile);
  const { options } = ts.parseJsonConfigFileContent(config, ts.sys, root);
  const program = ts.createProgram([path.join(root, "test/types/define.test-d.ts")], options);
  const diagnostics = ts.getPreEmitDiagnostics(program).map((d) => {
    const where = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start) : undefined;
    return `${where ? `line ${where.line + 1}: ` : ""}${ts.flattenDiagnosticMessageText(d.messageText, " ")}`;
  });
  assert.deepEqual(diagnostics, []);
});
