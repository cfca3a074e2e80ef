import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
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
