// The engine side of a local directory sync over a build stream. The client sends every entry's
// metadata; this compares it with the manifest of the engine's copy, asks for the content of the
// changed regular files only, stages what arrives beside the copy and then applies the same
// bookkeeping as an in-process sync (so the copy and its manifest look the same either way).
import { createWriteStream, type WriteStream } from "node:fs";
import { mkdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import type { WireFileStat, WireSyncEntries, WireSyncFileData } from "../server/engine-proto.js";
import {
  applySync,
  changedEntries,
  type EntryMeta,
  type Manifest,
  readSyncManifest,
  type SyncStats,
} from "../source/local-sync.js";

export interface SyncReceiverChannel {
  /** Asks the client for the content of these entries (positions in the order they were sent). */
  requestFiles(indexes: number[]): void;
  /** Stops reading the build stream until the returned (idempotent) function is called: disk is slower than the wire. */
  holdInput(): () => void;
}

/** A malformed or hostile sync from the client: the engine refuses it rather than write outside its copy. */
export class SyncProtocolError extends Error {
  override readonly name = "SyncProtocolError";
}

function checkedPath(path: string): string {
  const segments = path.split("/");
  if (
    !path ||
    path.startsWith("/") ||
    path.includes("\0") ||
    segments.some((s) => s === "" || s === "." || s === "..")
  ) {
    throw new SyncProtocolError(
      `the client sent an invalid path in a local directory: ${JSON.stringify(path)}`,
    );
  }
  return path;
}

function entryFromWire(w: WireFileStat): EntryMeta {
  if (w.type !== "file" && w.type !== "dir" && w.type !== "symlink") {
    throw new SyncProtocolError(
      `the client sent an entry of unknown type ${JSON.stringify(w.type)} for ${w.path}`,
    );
  }
  return {
    type: w.type,
    size: w.type === "file" ? Number(w.size) : 0,
    mtimeMs: Number(w.mtimeMs),
    mode: Number(w.mode) & 0o7777,
    uid: Number(w.uid),
    gid: Number(w.gid),
    ino: Number(w.ino),
    link: w.type === "symlink" ? (w.link ?? "") : undefined,
  };
}

export class SyncReceiver {
  readonly result: Promise<SyncStats>;
  private resolveResult!: (s: SyncStats) => void;
  private rejectResult!: (e: Error) => void;
  private readonly previous: Promise<Manifest>;
  private readonly staging: string;
  private readonly paths: string[] = [];
  private readonly current: Manifest = {};
  private readonly needed = new Map<number, string>();
  private readonly writers = new Map<number, WriteStream>();
  private readonly completed = new Set<number>();
  private planned = false;
  private settled = false;
  private remaining = 0;
  /** File content bytes that crossed the wire for this sync. */
  bytesReceived = 0;

  constructor(
    private readonly dest: string,
    private readonly channel: SyncReceiverChannel,
  ) {
    this.result = new Promise<SyncStats>((resolve, reject) => {
      this.resolveResult = resolve;
      this.rejectResult = reject;
    });
    this.result.catch(() => {});
    this.staging = `${dest.replace(/\/+$/, "")}.incoming`;
    this.previous = readSyncManifest(dest);
    this.previous.catch(() => {});
  }

  onEntries(batch: WireSyncEntries): void {
    if (this.settled) return;
    try {
      if (this.planned) throw new SyncProtocolError("the client sent directory entries after the last batch");
      for (const w of batch.entries ?? []) {
        const path = checkedPath(w.path);
        if (this.current[path]) throw new SyncProtocolError(`the client sent ${path} twice`);
        this.current[path] = entryFromWire(w);
        this.paths.push(path);
      }
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    if (batch.done) {
      this.planned = true;
      this.plan().catch((err: Error) => this.fail(err));
    }
  }

  onData(d: WireSyncFileData): void {
    if (this.settled) return;
    const index = d.index;
    if (!this.needed.has(index) || this.completed.has(index)) {
      this.fail(
        new SyncProtocolError(
          `the client sent content for entry #${index}, which the engine did not ask for`,
        ),
      );
      return;
    }
    let writer = this.writers.get(index);
    if (!writer) {
      writer = createWriteStream(join(this.staging, String(index)), { mode: 0o600 });
      writer.on("error", (err) => this.fail(err));
      this.writers.set(index, writer);
    }
    if (d.data?.length) {
      this.bytesReceived += d.data.length;
      if (!writer.write(d.data)) {
        // Released on drain, or on close when the sync fails before the disk caught up.
        const release = this.channel.holdInput();
        writer.once("drain", release);
        writer.once("close", release);
      }
    }
    if (d.eof) {
      this.completed.add(index);
      writer.end();
      writer.once("close", () => {
        this.writers.delete(index);
        if (--this.remaining === 0) this.finish().catch((err: Error) => this.fail(err));
      });
    }
  }

  /** Ends the sync with `err` (the build was cancelled, the client reported an error, the stream broke). */
  fail(err: Error): void {
    if (this.settled) return;
    this.settled = true;
    for (const w of this.writers.values()) w.destroy();
    this.writers.clear();
    rm(this.staging, { recursive: true, force: true })
      .catch(() => {})
      .finally(() => this.rejectResult(err));
  }

  private async plan(): Promise<void> {
    for (const path of this.paths) {
      // A path below a symlink would write wherever the link points.
      for (let i = path.indexOf("/"); i > 0; i = path.indexOf("/", i + 1)) {
        if (this.current[path.slice(0, i)]?.type === "symlink") {
          throw new SyncProtocolError(
            `the client sent ${path}, which is below the symlink ${path.slice(0, i)}`,
          );
        }
      }
    }
    const previous = await this.previous;
    await rm(this.staging, { recursive: true, force: true });
    await mkdir(this.staging, { recursive: true, mode: 0o700 });
    const indexOf = new Map(this.paths.map((p, i) => [p, i]));
    const wanted = changedEntries(previous, this.current)
      .filter((p) => this.current[p]!.type === "file")
      .map((p) => indexOf.get(p)!);
    for (const i of wanted) this.needed.set(i, this.paths[i]!);
    this.remaining = wanted.length;
    if (this.settled) return;
    // Sent even when empty: it tells the client this sync needs nothing more from it.
    this.channel.requestFiles(wanted);
    if (wanted.length === 0) return this.finish();
  }

  private async finish(): Promise<void> {
    if (this.settled) return;
    const previous = await this.previous;
    const indexOf = new Map([...this.needed].map(([i, p]) => [p, i]));
    const stats = await applySync(this.dest, previous, this.current, (path, to) =>
      rename(join(this.staging, String(indexOf.get(path))), to),
    );
    await rm(this.staging, { recursive: true, force: true });
    if (this.settled) return;
    this.settled = true;
    this.resolveResult(stats);
  }
}
