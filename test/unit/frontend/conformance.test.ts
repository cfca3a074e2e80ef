// BuildKit's own parser and lexer test data (read from ../shared/conformance, never copied):
// one test per Dockerfile case, and one per lexer file listing every failing line.
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { DockerfileError } from "../../../src/frontend/dockerfile/parser/errors.js";
import { dumpAst } from "../../../src/frontend/dockerfile/parser/index.js";
import { envsFromSlice, ShellLex } from "../../../src/frontend/dockerfile/shell/index.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const conformance = path.resolve(repoRoot, "../shared/conformance");

function caseDirs(dir: string): string[] {
  const full = path.join(conformance, dir);
  if (!existsSync(full)) return [];
  return readdirSync(full, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();
}

describe("conformance: Dockerfile parser (BuildKit testfiles)", () => {
  const cases = caseDirs("dockerfile-parser");
  it("has test data", () => {
    assert.ok(cases.length > 0, `no cases under ${path.join(conformance, "dockerfile-parser")}`);
  });
  for (const name of cases) {
    it(name, () => {
      const dir = path.join(conformance, "dockerfile-parser", name);
      const dockerfile = readFileSync(path.join(dir, "Dockerfile"), "utf8");
      const expected = readFileSync(path.join(dir, "result"), "utf8");
      assert.equal(dumpAst(dockerfile), expected);
    });
  }
});

describe("conformance: Dockerfile parser negative cases", () => {
  const cases = caseDirs("dockerfile-parser-negative");
  it("has test data", () => {
    assert.ok(cases.length > 0, `no cases under ${path.join(conformance, "dockerfile-parser-negative")}`);
  });
  for (const name of cases) {
    it(name, () => {
      const dockerfile = readFileSync(
        path.join(conformance, "dockerfile-parser-negative", name, "Dockerfile"),
        "utf8",
      );
      assert.throws(
        () => dumpAst(dockerfile),
        (e: unknown) => {
          assert.ok(e instanceof DockerfileError, `expected a DockerfileError, got ${String(e)}`);
          assert.ok(e.detail.length > 0, "the error says what is wrong");
          assert.ok(e.format().includes(e.detail));
          return true;
        },
      );
    });
  }
});

function readLexerFile(name: string): string[] | undefined {
  const file = path.join(conformance, "shell-lexer", name);
  return existsSync(file) ? readFileSync(file, "utf8").split("\n") : undefined;
}

describe("conformance: shell lexer (BuildKit envVarTest, wordsTest)", () => {
  it("envVarTest: every A and U line expands as expected", () => {
    const lines = readLexerFile("envVarTest");
    assert.ok(lines, "envVarTest is missing");
    const env = envsFromSlice(["PWD=/home", "SHELL=bash", "KOREAN=한국어", "NULL="]);
    const failures: string[] = [];
    let checked = 0;
    lines.forEach((line, i) => {
      if (line.trim() === "" || line.startsWith("#")) return;
      const fields = line.split("|");
      if (fields.length !== 3) {
        failures.push(`line ${i + 1}: malformed: ${line}`);
        return;
      }
      const platform = fields[0]!.trim();
      if (platform === "W") return;
      const input = fields[1]!.trim();
      const expected = fields[2]!.trim();
      let got: string;
      try {
        got = new ShellLex("\\").processWord(input, env);
      } catch (e) {
        got = "error";
        if (expected !== "error") got = `error (${(e as Error).message})`;
      }
      checked++;
      if (got !== expected) {
        failures.push(
          `line ${i + 1}: ${input} → ${JSON.stringify(got)}, expected ${JSON.stringify(expected)}`,
        );
      }
    });
    assert.ok(checked > 100, `only ${checked} lines checked`);
    assert.deepEqual(failures, [], `failing lines:\n${failures.join("\n")}`);
  });

  it("wordsTest: every line splits into the expected words", () => {
    const lines = readLexerFile("wordsTest");
    assert.ok(lines, "wordsTest is missing");
    const envs: string[] = [];
    const failures: string[] = [];
    let checked = 0;
    lines.forEach((line, i) => {
      if (line === "" || line.startsWith("#")) return;
      if (line.startsWith("ENV ")) {
        envs.push(line.slice(3).replace(/^ +/, ""));
        return;
      }
      const fields = line.split("|");
      if (fields.length !== 2) {
        failures.push(`line ${i + 1}: malformed: ${line}`);
        return;
      }
      const input = fields[0]!.trim();
      const expected = fields[1]!.replace(/^ +/, "").split(",");
      let got: string[];
      try {
        got = new ShellLex("\\").processWords(input, envsFromSlice(envs));
      } catch {
        got = ["error"];
      }
      checked++;
      if (JSON.stringify(got) !== JSON.stringify(expected)) {
        failures.push(
          `line ${i + 1}: ${input} → ${JSON.stringify(got)}, expected ${JSON.stringify(expected)}`,
        );
      }
    });
    assert.ok(checked > 10, `only ${checked} lines checked`);
    assert.deepEqual(failures, [], `failing lines:\n${failures.join("\n")}`);
  });
});
