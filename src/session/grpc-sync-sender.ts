// The client side of a local directory sync over a build stream: scans the directory with the
// build's include/exclude patterns, sends every entry's metadata, then streams the content of
// exactly the files the engine asks for, waiting whenever the stream is full.
import { createReadStream } from "node:fs";
import { join } from "node:path";
import type { BuildClientMessage, MessageSink, WireFileStat } from "../server/engine-proto.js";
import { type SyncOptions, scanLocalDirectory } from "../source/local-sync.js";

const ENTRIES_PER_MESSAGE = 2000;
const CHUNK_BYTES = 256 * 1024;

export class SyncSender {
  private paths: string[] = [];
  private aborted = false;

  constructor(
    private readonly dir: string,
    private readonly call: number,
    private readonly sink: MessageSink<BuildClientMessage>,
  ) {}

  async sendEntries(opts: SyncOptions): Promise<void> {
    const manifest = await scanLocalDirectory(this.dir, opts);
    this.paths = Object.keys(manifest).sort();
    const stats: WireFileStat[] = this.paths.map((path) => {
      const m = manifest[path]!;
      const stat: WireFileStat = {
        path,
        type: m.type,
        size: m.size,
        mtimeMs: m.mtimeMs,
        mode: m.mode,
        uid: m.uid,
        gid: m.gid,
        ino: m.ino,
      };
      if (m.link !== undefined) stat.link = m.link;
      return stat;
    });
    for (let i = 0; ; i += ENTRIES_PER_MESSAGE) {
      if (this.aborted) return;
      const entries = stats.slice(i, i + ENTRIES_PER_MESSAGE);
      const done = i + ENTRIES_PER_MESSAGE >= stats.length;
      await this.send({ syncEntries: { call: this.call, entries, done } });
      if (done) return;
    }
  }

  async sendFiles(indexes: readonly number[]): Promise<void> {
    for (const index of indexes) {
      if (this.aborted) return;
      const path = this.paths[index];
      if (path === undefined)
        throw new Error(`the engine asked for entry #${index} of ${this.dir}, which was not sent`);
      // One chunk behind, so that a small file travels in one message together with its end.
      let held: Buffer | undefined;
      const input = createReadStream(join(this.dir, path), { highWaterMark: CHUNK_BYTES });
      try {
        for await (const chunk of input as AsyncIterable<Buffer>) {
          if (this.aborted) return;
          if (held) await this.send({ syncData: { call: this.call, index, data: held, eof: false } });
          held = chunk;
        }
      } catch (err) {
        throw new Error(
          `cannot read ${join(this.dir, path)} for the build context: ${(err as Error).message}`,
        );
      } finally {
        input.destroy();
      }
      await this.send({ syncData: { call: this.call, index, data: held ?? Buffer.alloc(0), eof: true } });
    }
  }

  /** The engine no longer needs this sync. */
  abort(): void {
    this.aborted = true;
  }

  private async send(message: BuildClientMessage): Promise<void> {
    if (!this.sink.send(message)) await this.sink.drained();
  }
}
