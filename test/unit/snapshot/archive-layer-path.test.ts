import assert from "node:assert/strict";
import fc from "fast-check";
import {
  cleanLayerPath,
  layerPathComponents,
  UnsafeLayerEntryError,
} from "../../../src/archive/layer-path.js";

describe("layer entry paths", () => {
  it("takes a leading slash, dots and repeated slashes as the root's own", () => {
    assert.equal(cleanLayerPath("/etc//passwd"), "etc/passwd");
    assert.equal(cleanLayerPath("./usr/./bin/"), "usr/bin");
    assert.equal(cleanLayerPath("a/b/../c"), "a/c");
    assert.deepEqual(layerPathComponents("./"), []);
  });

  it("rejects a path that climbs above the root, naming the entry", () => {
    for (const name of ["..", "../x", "/../x", "a/../../x", "./a/b/../../../x"]) {
      assert.throws(
        () => layerPathComponents(name),
        (err: Error) => err instanceof UnsafeLayerEntryError && err.message.includes(JSON.stringify(name)),
      );
    }
  });

  it("never yields a component that is empty, '.' or '..'", () => {
    const part = fc.constantFrom("a", "b", ".", "..", "", "c.d");
    fc.assert(
      fc.property(fc.array(part, { maxLength: 12 }), fc.boolean(), (parts, absolute) => {
        const name = (absolute ? "/" : "") + parts.join("/");
        let comps: string[];
        try {
          comps = layerPathComponents(name);
        } catch (err) {
          assert.ok(err instanceof UnsafeLayerEntryError);
          return;
        }
        for (const c of comps) assert.ok(c !== "" && c !== "." && c !== "..");
      }),
    );
  });
});
