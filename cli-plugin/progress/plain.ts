// BuildKit's plain progress format: `#N name`, `#N 0.123 log line`, `#N DONE 0.4s`, `#N CACHED`.
import type { Digest } from "../../src/oci/digest.js";
import type { ProgressEvent } from "../../src/solver/progress.js";
import type { ProgressRenderer } from "./renderer.js";

interface VertexState {
  readonly num: number;
  started?: number;
  done: boolean;
  partialLine: Record<1 | 2, string>;
}

export class PlainProgress implements ProgressRenderer {
  private readonly vertices = new Map<Digest, VertexState>();
  private next = 1;
  private lastVertex: Digest | undefined;

  constructor(private readonly out: NodeJS.WritableStream) {}

  private state(d: Digest): VertexState {
    let s = this.vertices.get(d);
    if (!s) {
      s = { num: this.next++, done: false, partialLine: { 1: "", 2: "" } };
      this.vertices.set(d, s);
    }
    return s;
  }

  private write(d: Digest, text: string): void {
    // A blank line separates one vertex's block from the next, as BuildKit prints it.
    if (this.lastVertex !== undefined && this.lastVertex !== d) this.out.write("\n");
    this.lastVertex = d;
    this.out.write(text);
  }

  handle(e: ProgressEvent): void {
    switch (e.type) {
      case "vertex": {
        const s = this.state(e.vertex);
        if (s.done) return;
        if (e.started !== undefined && s.started === undefined) {
          s.started = e.started;
          this.write(e.vertex, `#${s.num} ${e.name}\n`);
        }
        if (e.cached) {
          s.done = true;
          this.write(e.vertex, `#${s.num} CACHED\n`);
        } else if (e.error !== undefined) {
          s.done = true;
          this.flushPartial(e.vertex, s);
          this.write(e.vertex, `#${s.num} ERROR: ${e.error}\n`);
        } else if (e.completed !== undefined) {
          s.done = true;
          this.flushPartial(e.vertex, s);
          this.write(e.vertex, `#${s.num} DONE ${duration(e.completed - (s.started ?? e.completed))}s\n`);
        }
        return;
      }
      case "log": {
        const s = this.state(e.vertex);
        const text = s.partialLine[e.stream] + e.data.toString("utf8");
        const lines = text.split("\n");
        s.partialLine[e.stream] = lines.pop() ?? "";
        const at = seconds(e.timestamp - (s.started ?? e.timestamp));
        for (const line of lines) this.write(e.vertex, `#${s.num} ${at} ${line}\n`);
        return;
      }
      case "status": {
        const s = this.state(e.vertex);
        if (e.completed !== undefined) {
          const size = e.total ? ` ${formatBytes(e.total)}` : "";
          this.write(e.vertex, `#${s.num} ${e.name ?? e.id}${size} done\n`);
        }
        return;
      }
      case "warning":
        this.out.write(
          `WARNING: ${e.message}${e.location ? ` (${e.location.file}:${e.location.line})` : ""}\n`,
        );
        return;
    }
  }

  private flushPartial(d: Digest, s: VertexState): void {
    for (const fd of [1, 2] as const) {
      if (s.partialLine[fd]) {
        this.write(d, `#${s.num} ${seconds(Date.now() - (s.started ?? Date.now()))} ${s.partialLine[fd]}\n`);
        s.partialLine[fd] = "";
      }
    }
  }

  async close(): Promise<void> {}
}

/** Log lines carry the offset from the vertex's start with millisecond precision, as BuildKit's. */
function seconds(ms: number): string {
  return (Math.max(0, ms) / 1000).toFixed(3);
}

function duration(ms: number): string {
  return (Math.max(0, ms) / 1000).toFixed(1);
}

export function formatBytes(n: number): string {
  if (n < 1000) return `${n}B`;
  if (n < 1000 ** 2) return `${(n / 1000).toFixed(2)}kB`;
  if (n < 1000 ** 3) return `${(n / 1000 ** 2).toFixed(2)}MB`;
  return `${(n / 1000 ** 3).toFixed(2)}GB`;
}
