// The progress event stream of a solve, shaped after BuildKit's SolveStatus: vertex state changes,
// per-vertex log lines with their stream, byte counters for transfers, and warnings.
import type { Digest } from "../oci/digest.js";

export interface VertexEvent {
  readonly type: "vertex";
  readonly vertex: Digest;
  readonly name: string;
  readonly inputs: readonly Digest[];
  /** ms since epoch; set once the vertex starts executing (or is found cached). */
  readonly started?: number;
  readonly completed?: number;
  readonly cached?: boolean;
  readonly error?: string;
  readonly progressGroup?: string;
}

export interface LogEvent {
  readonly type: "log";
  readonly vertex: Digest;
  /** 1 = stdout, 2 = stderr. */
  readonly stream: 1 | 2;
  readonly data: Buffer;
  readonly timestamp: number;
}

export interface StatusEvent {
  readonly type: "status";
  readonly vertex: Digest;
  /** e.g. `sha256:…` of a layer being pulled, or `exporting layers`. */
  readonly id: string;
  readonly name?: string;
  readonly current: number;
  readonly total?: number;
  readonly started?: number;
  readonly completed?: number;
  readonly timestamp: number;
}

export interface WarningEvent {
  readonly type: "warning";
  readonly vertex?: Digest;
  readonly message: string;
  readonly detail?: string;
  readonly url?: string;
  readonly location?: { readonly file: string; readonly line: number };
}

export type ProgressEvent = VertexEvent | LogEvent | StatusEvent | WarningEvent;

export type ProgressSink = (event: ProgressEvent) => void;

/** Fans one stream of events out to several subscribers (e.g. two builds sharing a vertex). */
export class ProgressFanout {
  private readonly sinks = new Set<ProgressSink>();
  private readonly history: ProgressEvent[] = [];

  /** Adds a subscriber; it first receives what was already emitted, so late joiners see the whole vertex. */
  subscribe(sink: ProgressSink): () => void {
    for (const e of this.history) sink(e);
    this.sinks.add(sink);
    return () => this.sinks.delete(sink);
  }

  emit(event: ProgressEvent): void {
    this.history.push(event);
    for (const s of this.sinks) s(event);
  }
}
