// Which of a node's running pods serves a client. `sticky` sends the same client (keyed, as in
// Buildx, by its directory) to the same pod, where its cache is, with a consistent hash:
// rendezvous hashing, so adding or losing a pod moves only the clients of that pod. `random`
// spreads clients evenly.
import { createHash, randomInt } from "node:crypto";
import type { LoadBalance } from "./options.js";

export type PodChooser = (podNames: readonly string[]) => string;

/** The pod with the highest hash of (pod, key): stable for a key while the pod set stays. */
export function stickyPod(podNames: readonly string[], key: string): string {
  let best: { name: string; weight: Buffer } | undefined;
  for (const name of podNames) {
    const weight = createHash("sha256").update(name).update("\0").update(key).digest();
    if (!best || Buffer.compare(weight, best.weight) > 0) best = { name, weight };
  }
  if (!best) throw new Error("no pod to choose from");
  return best.name;
}

export function podChooser(mode: LoadBalance, key: string): PodChooser {
  if (mode === "sticky") return (names) => stickyPod(names, key);
  return (names) => {
    if (names.length === 0) throw new Error("no pod to choose from");
    return names[randomInt(names.length)]!;
  };
}
