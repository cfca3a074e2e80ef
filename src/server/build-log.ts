// The daemon's own account of the builds it serves, one info line per event worth keeping: a build
// starting (with the platforms it is for), each step it finished, ran from cache or failed, and how
// the build ended. The client sees progress; an operator reading the daemon's log (`docker logs` of
// a docker-container node) sees which node executed which platform's steps.
import { randomBytes } from "node:crypto";
import type { BuildRequest } from "../client/build-request.js";
import { formatPlatform } from "../oci/platform.js";
import type { ProgressEvent } from "../solver/progress.js";

export type DaemonLog = (line: string) => void;

export class BuildLog {
  private readonly id = randomBytes(4).toString("hex");
  private readonly ended = new Set<string>();
  private readonly label: string;

  constructor(
    private readonly log: DaemonLog,
    request: BuildRequest,
  ) {
    // A single-platform request names its steps without the platform: every line carries it.
    const platforms = (request.platforms ?? []).map(formatPlatform).join(",") || "default platform";
    this.label = `build ${this.id} (${platforms})`;
    log(`info: ${this.label}: started`);
  }

  /** Logs the steps that `e` ends. */
  progress(e: ProgressEvent): void {
    if (e.type !== "vertex" || this.ended.has(e.vertex)) return;
    if (e.error !== undefined) {
      this.ended.add(e.vertex);
      this.log(`info: ${this.label}: ${e.name}: failed: ${e.error.split("\n")[0]}`);
    } else if (e.cached) {
      this.ended.add(e.vertex);
      this.log(`info: ${this.label}: ${e.name}: cached`);
    } else if (e.completed !== undefined) {
      this.ended.add(e.vertex);
      const seconds = e.started !== undefined ? ` in ${((e.completed - e.started) / 1000).toFixed(2)}s` : "";
      this.log(`info: ${this.label}: ${e.name}: done${seconds}`);
    }
  }

  end(outcome: "finished" | "cancelled" | { failed: Error }): void {
    const how =
      typeof outcome === "string" ? outcome : `failed: ${outcome.failed.message.split("\n").at(-1)}`;
    this.log(`info: ${this.label}: ${how}`);
  }
}
