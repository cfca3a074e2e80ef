// One renderer for the progress of several nodes. Each node's engine numbers its own vertices, and
// two nodes share vertex digests for steps that do not depend on the platform (loading the
// Dockerfile, the context): each node's digests are made its own, so that one node's step neither
// hides nor completes another's. A node that builds one platform names its steps without the
// platform (its request is single-platform), so the platform is put in as BuildKit's multi-platform
// names have it: `[linux/arm64 2/3] RUN …`. Warnings that every node reports are shown once.
import { type Digest, sha256Digest } from "../oci/digest.js";
import { formatPlatform, type Platform } from "../oci/platform.js";
import type { ProgressEvent, ProgressSink } from "../solver/progress.js";

/** A stage step's name: `[2/3] RUN …`, `[build 1/4] FROM …` (not `[internal] …`). */
const STEP_NAME = /^\[((?:\S+ )?\s*\d+\/\d+)\] /;

export class NodeProgressMerger {
  private readonly warned = new Set<string>();

  constructor(private readonly sink: ProgressSink) {}

  /** The sink for one node's events; `platforms` are the ones that node builds. */
  forNode(node: string, platforms: readonly Platform[]): ProgressSink {
    const ids = new Map<Digest, Digest>();
    const own = (d: Digest): Digest => {
      let mapped = ids.get(d);
      if (!mapped) ids.set(d, (mapped = sha256Digest(`${node}\0${d}`)));
      return mapped;
    };
    const platform = platforms.length === 1 ? formatPlatform(platforms[0]!) : undefined;
    const rename = (name: string) =>
      platform ? name.replace(STEP_NAME, (_, step: string) => `[${platform} ${step}] `) : name;
    return (e: ProgressEvent) => {
      switch (e.type) {
        case "vertex":
          return this.sink({ ...e, vertex: own(e.vertex), inputs: e.inputs.map(own), name: rename(e.name) });
        case "log":
        case "status":
          return this.sink({ ...e, vertex: own(e.vertex) });
        case "warning": {
          const key = `${e.message}\0${e.location?.file ?? ""}:${e.location?.line ?? ""}`;
          if (this.warned.has(key)) return;
          this.warned.add(key);
          return this.sink(e.vertex ? { ...e, vertex: own(e.vertex) } : e);
        }
      }
    };
  }
}
