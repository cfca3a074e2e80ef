import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { REPO_ROOT } from "../support/world.js";

const KILN = join(REPO_ROOT, "bin", "kiln");
const CONFORMANCE = resolve(REPO_ROOT, "..", "shared", "conformance", "dockerfile-parser");

describe("kiln debug dump-ast", () => {
  it("prints the same dump as BuildKit's parser for a conformance case", () => {
    const out = execFileSync(KILN, ["debug", "dump-ast", join(CONFORMANCE, "env", "Dockerfile")], {
      encoding: "utf8",
    });
    assert.equal(out.trimEnd(), readFileSync(join(CONFORMANCE, "env", "result"), "utf8").trimEnd());
  });

  it("reads the Dockerfile from standard input", () => {
    const out = execFileSync(KILN, ["debug", "dump-ast", "-"], {
      input: "FROM busybox\nRUN echo hi\n",
      encoding: "utf8",
    });
    assert.equal(out, '(from "busybox")\n(run "echo hi")\n');
  });

  it("fails with exit 1, the file:line and the line's text of an instruction that cannot parse", () => {
    const r = spawnSync(KILN, ["debug", "dump-ast", "-"], {
      input: "FROM busybox\nENV PATH\n",
      encoding: "utf8",
    });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /Dockerfile:2\n/);
    assert.match(r.stderr, /ENV PATH/);
    assert.match(r.stderr, /ENV must have two arguments/);
  });
});

describe("kiln debug dump-llb", () => {
  it("prints the same definition twice for the same Dockerfile, and a different one for another target", () => {
    const ctx = mkdtempSync(join(tmpdir(), "kiln-dump-llb-"));
    try {
      writeFileSync(join(ctx, "Dockerfile"), "FROM scratch AS a\nCOPY x /x\nFROM scratch AS b\nCOPY y /y\n");
      const dump = (target: string) =>
        execFileSync(KILN, ["debug", "dump-llb", "--target", target, ctx], { encoding: "utf8" });
      const a1 = dump("a");
      assert.equal(dump("a"), a1, "deterministic");
      const parsed = JSON.parse(a1);
      assert.ok(JSON.stringify(parsed).includes('"local://context"'), "the context is a local source");
      assert.ok(JSON.stringify(parsed).includes('"/x"'));
      assert.ok(!JSON.stringify(parsed).includes('"/y"'), "stage b is not in target a's definition");
      assert.notEqual(dump("b"), a1);
    } finally {
      rmSync(ctx, { recursive: true, force: true });
    }
  });
});
