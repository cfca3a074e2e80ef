import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { copySourceChecksum } from "../../../src/worker/fileop/copy-checksum.js";
import { copyAction } from "./copy-helpers.js";
import { TempDirs, writeTree } from "./tree-fixtures.js";

describe("copySourceChecksum", () => {
  const temp = new TempDirs();
  let src: string;
  beforeEach(async () => {
    src = await temp.make();
    await writeTree(src, { "pkg/a/go.mod": "a", "pkg/a/main.go": "m", "pkg/b/go.mod": "b", README: "r" });
  });
  afterEach(() => temp.cleanup());

  it("covers what --parents selects and nothing else", async () => {
    const action = copyAction({ src: "pkg/*/go.mod", dest: "/out/", parents: true });
    const before = await copySourceChecksum(action, src);
    await writeFile(join(src, "pkg/a/main.go"), "changed");
    await writeFile(join(src, "README"), "changed");
    assert.equal(await copySourceChecksum(action, src), before);
    await writeFile(join(src, "pkg/b/go.mod"), "changed");
    assert.notEqual(await copySourceChecksum(action, src), before);
  });

  it("covers what --exclude leaves", async () => {
    const action = copyAction({ src: "pkg", dest: "/out/", excludePatterns: ["*/main.go"] });
    const before = await copySourceChecksum(action, src);
    await writeFile(join(src, "pkg/a/main.go"), "changed");
    assert.equal(await copySourceChecksum(action, src), before);
  });

  it("fails like the copy when a required path is missing", async () => {
    const action = copyAction({
      src: "/",
      dest: "/out/",
      includePatterns: ["nope"],
      requiredPaths: ["/nope"],
    });
    await assert.rejects(copySourceChecksum(action, src), /"\/nope": not found/);
  });
});
