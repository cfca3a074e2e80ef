import assert from "node:assert/strict";
import { podChooser, stickyPod } from "../../../drivers/kubernetes/pod-chooser.js";

const PODS = ["kube0-abc-1", "kube0-abc-2", "kube0-abc-3", "kube0-abc-4"];
const KEYS = Array.from({ length: 200 }, (_, i) => `/home/dev/project-${i}`);

describe("kubernetes pod choice", () => {
  it("sticky sends the same key to the same pod whatever the order pods are listed in", () => {
    for (const key of KEYS.slice(0, 20))
      assert.equal(stickyPod(PODS, key), stickyPod([...PODS].reverse(), key));
  });

  it("sticky spreads different keys over every pod", () => {
    const used = new Set(KEYS.map((k) => stickyPod(PODS, k)));
    assert.deepEqual([...used].sort(), PODS);
  });

  it("sticky moves only the keys of a pod that goes away", () => {
    const gone = PODS[1]!;
    const remaining = PODS.filter((p) => p !== gone);
    for (const key of KEYS) {
      const before = stickyPod(PODS, key);
      if (before !== gone) assert.equal(stickyPod(remaining, key), before, `key ${key} stayed on its pod`);
    }
  });

  it("random picks among the pods given and reaches each of them", () => {
    const choose = podChooser("random", "ignored");
    const seen = new Set(Array.from({ length: 200 }, () => choose(PODS)));
    assert.deepEqual([...seen].sort(), PODS);
  });

  it("refuses to choose from no pods", () => {
    assert.throws(() => podChooser("sticky", "k")([]), /no pod to choose from/);
    assert.throws(() => podChooser("random", "k")([]), /no pod to choose from/);
  });
});
