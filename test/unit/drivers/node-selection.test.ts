import assert from "node:assert/strict";
import { planNodes } from "../../../drivers/node-selection.js";
import { parsePlatform } from "../../../src/oci/platform.js";

const p = (...specs: string[]) => specs.map(parsePlatform);

describe("node selection", () => {
  it("gives the first node its default platform when none is requested", () => {
    assert.deepEqual(planNodes([], [{ declared: p("linux/arm64") }]), {
      kind: "assigned",
      assignments: [{ node: 0, platforms: [], unmatched: [] }],
    });
  });

  it("sends each platform to the node that declares it", () => {
    const plan = planNodes(p("linux/arm64", "linux/amd64"), [
      { declared: p("linux/amd64") },
      { declared: p("linux/arm64") },
    ]);
    assert.deepEqual(plan, {
      kind: "assigned",
      assignments: [
        { node: 0, platforms: p("linux/amd64"), unmatched: [] },
        { node: 1, platforms: p("linux/arm64"), unmatched: [] },
      ],
    });
  });

  it("builds platforms declared by one node in one solve on it", () => {
    const plan = planNodes(p("linux/amd64", "linux/386"), [
      { declared: p("linux/amd64", "linux/386") },
      { declared: [] },
    ]);
    assert.equal(plan.kind, "assigned");
    assert.deepEqual(plan.kind === "assigned" && plan.assignments.map((a) => a.node), [0]);
  });

  it("asks for reported platforms when declared ones do not cover the request", () => {
    assert.deepEqual(planNodes(p("linux/arm64"), [{ declared: p("linux/amd64") }, { declared: [] }]), {
      kind: "needs-reported",
    });
  });

  it("uses what the engines report when declarations fall short", () => {
    const plan = planNodes(p("linux/arm64"), [
      { declared: [], reported: p("linux/amd64") },
      { declared: [], reported: p("linux/arm64") },
    ]);
    assert.deepEqual(plan, {
      kind: "assigned",
      assignments: [{ node: 1, platforms: p("linux/arm64"), unmatched: [] }],
    });
  });

  it("prefers a node declaring a platform over one only reporting it", () => {
    const plan = planNodes(p("linux/amd64", "linux/s390x"), [
      { declared: [], reported: p("linux/amd64") },
      { declared: p("linux/amd64"), reported: p("linux/amd64") },
    ]);
    assert.equal(
      plan.kind === "assigned" &&
        plan.assignments.find((a) => a.platforms.some((x) => x.architecture === "amd64"))?.node,
      1,
    );
  });

  it("lets a node build an older compatible variant it reports", () => {
    const plan = planNodes(p("linux/arm/v6"), [
      { declared: [], reported: p("linux/amd64") },
      { declared: [], reported: p("linux/arm/v7") },
    ]);
    assert.deepEqual(plan, {
      kind: "assigned",
      assignments: [{ node: 1, platforms: p("linux/arm/v6"), unmatched: [] }],
    });
  });

  it("sends platforms no node builds to the first node, marked unmatched", () => {
    const plan = planNodes(p("linux/riscv64"), [
      { declared: [], reported: p("linux/amd64") },
      { declared: [], reported: p("linux/arm64") },
    ]);
    assert.deepEqual(plan, {
      kind: "assigned",
      assignments: [{ node: 0, platforms: p("linux/riscv64"), unmatched: p("linux/riscv64") }],
    });
  });

  it("spreads platforms that several nodes run over those nodes", () => {
    const both = { declared: [], reported: p("linux/amd64"), emulated: p("linux/arm64") };
    const plan = planNodes(p("linux/amd64", "linux/386"), [
      { declared: [], reported: p("linux/amd64", "linux/386") },
      { declared: [], reported: p("linux/amd64", "linux/386") },
    ]);
    assert.deepEqual(plan, {
      kind: "assigned",
      assignments: [
        { node: 0, platforms: p("linux/amd64"), unmatched: [] },
        { node: 1, platforms: p("linux/386"), unmatched: [] },
      ],
    });
    const emulatedOnBoth = planNodes(p("linux/amd64", "linux/arm64"), [both, both]);
    assert.deepEqual(
      emulatedOnBoth.kind === "assigned" && emulatedOnBoth.assignments.map((a) => a.node),
      [0, 1],
    );
  });

  it("lets a platform only one node builds choose before those that could go elsewhere", () => {
    const plan = planNodes(p("linux/amd64", "linux/arm64"), [
      { declared: p("linux/amd64", "linux/arm64") },
      { declared: p("linux/arm64") },
    ]);
    assert.deepEqual(plan, {
      kind: "assigned",
      assignments: [
        { node: 0, platforms: p("linux/amd64"), unmatched: [] },
        { node: 1, platforms: p("linux/arm64"), unmatched: [] },
      ],
    });
  });

  it("sends a platform to a node running it natively before one emulating it", () => {
    const plan = planNodes(p("linux/arm64"), [
      { declared: [], reported: p("linux/amd64"), emulated: p("linux/arm64") },
      { declared: [], reported: p("linux/arm64"), emulated: [] },
    ]);
    assert.deepEqual(plan, {
      kind: "assigned",
      assignments: [{ node: 1, platforms: p("linux/arm64"), unmatched: [] }],
    });
  });

  it("sends a platform no node runs natively to a node that emulates it", () => {
    const plan = planNodes(p("linux/arm64"), [
      { declared: [], reported: p("linux/amd64"), emulated: [] },
      { declared: [], reported: p("linux/amd64"), emulated: p("linux/arm64") },
    ]);
    assert.deepEqual(plan, {
      kind: "assigned",
      assignments: [{ node: 1, platforms: p("linux/arm64"), unmatched: [] }],
    });
  });

  it("treats a repeated platform as one", () => {
    const plan = planNodes(p("linux/amd64", "linux/x86_64"), [{ declared: p("linux/amd64") }]);
    assert.deepEqual(plan.kind === "assigned" && plan.assignments[0]!.platforms, p("linux/amd64"));
  });
});
