import assert from "node:assert/strict";
import {
  leaveNode,
  type NodeGroup,
  parseNodeGroup,
  updateNode,
  validateBuilderName,
  validateName,
} from "../../../cli-plugin/store/node-group.js";

const empty: NodeGroup = { name: "b", driver: "docker-container", nodes: [], dynamic: false };

describe("builder names and nodes", () => {
  it("lowercases valid names", () => {
    assert.equal(validateName("My.Builder_1-x"), "my.builder_1-x");
  });

  it("refuses names that do not start with a letter", () => {
    assert.throws(() => validateName("1abc"), /invalid name 1abc, name needs to start with a letter/);
    assert.throws(() => validateName("a/b"), /invalid name a\/b/);
  });

  it("reserves the name default", () => {
    assert.throws(() => validateBuilderName("Default"), /default is a reserved name/);
  });

  it("names the first node after the builder with index 0", () => {
    const ng = updateNode(empty, { endpoint: "unix:///a", append: false });
    assert.deepEqual(
      ng.nodes.map((n) => n.name),
      ["b0"],
    );
  });

  it("names appended nodes with the next free index", () => {
    let ng = updateNode(empty, { endpoint: "e0", append: false });
    ng = updateNode(ng, { endpoint: "e1", append: true });
    ng = updateNode(ng, { endpoint: "e2", append: true });
    assert.deepEqual(
      ng.nodes.map((n) => n.name),
      ["b0", "b1", "b2"],
    );
  });

  it("refuses a new node without append when the builder has nodes", () => {
    const ng = updateNode(empty, { endpoint: "e0", append: false });
    assert.throws(
      () => updateNode(ng, { endpoint: "e1", append: false }),
      /existing instance for "b" but no append mode/,
    );
  });

  it("refuses a second node on the same endpoint", () => {
    const ng = updateNode(empty, { endpoint: "e0", append: false });
    assert.throws(() => updateNode(ng, { endpoint: "e0", append: true }), /invalid duplicate endpoint e0/);
  });

  it("keeps an appended node's own driver when it is not the builder's, and reads it back", () => {
    let ng = updateNode(empty, { endpoint: "e0", append: false, driver: "docker-container" });
    ng = updateNode(ng, { endpoint: "unix:///run/kilnd.sock", append: true, driver: "remote" });
    assert.deepEqual(
      ng.nodes.map((n) => n.driver),
      [undefined, "remote"],
    );
    assert.deepEqual(parseNodeGroup(JSON.stringify(ng), "b.json"), ng);
  });

  it("changes the named node in place without append", () => {
    let ng = updateNode(empty, { endpoint: "e0", append: false, flags: ["--debug"] });
    ng = updateNode(ng, { name: "b0", endpoint: "", append: false, flags: ["--trace"] });
    assert.equal(ng.nodes.length, 1);
    assert.equal(ng.nodes[0]!.endpoint, "e0");
    assert.deepEqual(ng.nodes[0]!.flags, ["--trace"]);
  });

  it("takes a node's declared platforms away from the other nodes", () => {
    let ng = updateNode(empty, { endpoint: "e0", append: false, platforms: ["linux/amd64,linux/arm64"] });
    ng = updateNode(ng, { endpoint: "e1", append: true, platforms: ["linux/arm64"] });
    assert.deepEqual(ng.nodes[0]!.platforms, ["linux/amd64"]);
    assert.deepEqual(ng.nodes[1]!.platforms, ["linux/arm64"]);
  });

  it("normalises declared platforms", () => {
    const ng = updateNode(empty, {
      endpoint: "e0",
      append: false,
      platforms: ["linux/aarch64", "LINUX/x86_64"],
    });
    assert.deepEqual(ng.nodes[0]!.platforms, ["linux/arm64", "linux/amd64"]);
  });

  it("removes a node that leaves", () => {
    let ng = updateNode(empty, { endpoint: "e0", append: false });
    ng = updateNode(ng, { endpoint: "e1", append: true });
    assert.deepEqual(
      leaveNode(ng, "b0").nodes.map((n) => n.name),
      ["b1"],
    );
  });

  it("refuses to let the last node leave", () => {
    const ng = updateNode(empty, { endpoint: "e0", append: false });
    assert.throws(() => leaveNode(ng, "b0"), /can not leave last node, do you mean rm\?/);
  });

  it("refuses a stored file without nodes", () => {
    assert.throws(
      () => parseNodeGroup('{"name":"x","driver":"remote"}', "/s/x"),
      /invalid builder file \/s\/x/,
    );
  });
});
