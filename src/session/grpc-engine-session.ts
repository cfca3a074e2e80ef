// The engine's view of a session whose client is at the other end of a build stream: each
// BuildSession call becomes a numbered request to the client, and the client's messages for it
// are routed back here. Syncs, SSH agent connections, exports and cache file reads and writes are
// multiplexed by number.
// Registry credentials are asked for only when the client said it answers for them.
import { createHash } from "node:crypto";
import { Duplex, Readable, Writable } from "node:stream";
import type { RegistryCredentials } from "../registry/credentials.js";
import type {
  BuildClientMessage,
  BuildServerMessage,
  WireCacheDirOp,
  WireRegistryCredentials,
  WireSessionInfo,
  WireSessionReply,
  WireStreamData,
} from "../server/engine-proto.js";
import type { SyncOptions, SyncStats } from "../source/local-sync.js";
import type { CacheDirAccess } from "./cache-dir.js";
import { SyncReceiver } from "./grpc-sync-receiver.js";
import type { BuildSession, ExportTarget } from "./types.js";

/** Export bytes the engine may have sent beyond what the client has stored. */
const EXPORT_WINDOW_BYTES = 8 * 1024 * 1024;
const EXPORT_CHUNK_BYTES = 256 * 1024;

export interface RemoteSessionChannel {
  send(message: BuildServerMessage): void;
  /** Stops reading client messages until the returned (idempotent) function is called. */
  holdInput(): () => void;
}

interface PendingReply {
  resolve(reply: WireSessionReply): void;
  reject(err: Error): void;
}

/** What the engine writes to the client for one export; the client's stored bytes return as credit. */
class ExportWriter extends Writable {
  private unacknowledged = 0;
  private blocked?: (err?: Error | null) => void;
  private ended = false;

  constructor(
    private readonly stream: number,
    private readonly channel: RemoteSessionChannel,
  ) {
    super();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    for (let off = 0; off < chunk.length; off += EXPORT_CHUNK_BYTES) {
      this.channel.send({
        exportData: { stream: this.stream, data: chunk.subarray(off, off + EXPORT_CHUNK_BYTES) },
      });
    }
    this.unacknowledged += chunk.length;
    if (this.unacknowledged <= EXPORT_WINDOW_BYTES) callback();
    else this.blocked = callback;
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.ended = true;
    this.channel.send({ exportData: { stream: this.stream, eof: true } });
    callback();
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    if (!this.ended) {
      this.ended = true;
      this.channel.send({
        exportData: {
          stream: this.stream,
          eof: true,
          error: err?.message ?? "the engine abandoned the export",
        },
      });
    }
    const blocked = this.blocked;
    this.blocked = undefined;
    blocked?.(err ?? new Error("export stream closed"));
    callback(err);
  }

  credit(bytes: number): void {
    this.unacknowledged -= bytes;
    if (this.blocked && this.unacknowledged <= EXPORT_WINDOW_BYTES) {
      const callback = this.blocked;
      this.blocked = undefined;
      callback();
    }
  }
}

/** A cache file the client is sending: input pauses while its reader is behind. */
interface CacheFileRead {
  readonly readable: Readable;
  release?: () => void;
}

interface OpenExport {
  writer: ExportWriter;
  resolveDone(): void;
  rejectDone(err: Error): void;
}

/** The wire's credentials as the registry client takes them; undefined when they name no one. */
export function credentialsFromWire(wire: WireRegistryCredentials): RegistryCredentials | undefined {
  const username = wire.username ?? undefined;
  const password = wire.secret ?? undefined;
  const identityToken = wire.identityToken || undefined;
  if (identityToken) return { ...(username ? { username } : {}), identityToken };
  if (!username && password === undefined) return undefined;
  return { username, password };
}

export class RemoteSession implements BuildSession {
  readonly id: string;
  private nextCall = 1;
  private closedWith?: Error;
  private readonly sharedKeys: Readonly<Record<string, string>>;
  private readonly sshIds: ReadonlySet<string>;
  private readonly answersCredentials: boolean;
  private readonly replies = new Map<number, PendingReply>();
  private readonly syncs = new Map<number, SyncReceiver>();
  private readonly sshStreams = new Map<number, Duplex>();
  private readonly exports = new Map<number, OpenExport>();
  private readonly cacheReads = new Map<number, CacheFileRead>();
  readonly cacheDirs?: CacheDirAccess;

  constructor(
    info: WireSessionInfo,
    private readonly channel: RemoteSessionChannel,
  ) {
    this.id = info.id;
    this.sharedKeys = info.sharedKeys ?? {};
    this.sshIds = new Set(info.sshIds ?? []);
    this.answersCredentials = info.registryCredentials === true;
    // A client that predates cache directories would never answer for them.
    if (info.cacheDirs) {
      const request = (dir: string, path: string, op: WireCacheDirOp) =>
        this.request((call) => ({ cacheDirRequest: { call, dir, path, op } }));
      this.cacheDirs = {
        read: (dir, path) => this.readCacheFile(dir, path),
        exists: async (dir, path) => (await request(dir, path, "exists")).found === true,
        openWrite: (dir, path) =>
          this.openWriteStream((call) => ({ cacheDirRequest: { call, dir, path, op: "write" } })),
        list: async (dir, path) => (await request(dir, path, "list")).names ?? [],
        remove: async (dir, path) => {
          await request(dir, path, "remove");
        },
      };
    }
  }

  sharedKey(name: string): string {
    // A directory the client did not describe gets a key of this session alone: it is never reused.
    return this.sharedKeys[name] ?? createHash("sha256").update(`${this.id}\0${name}`).digest("hex");
  }

  hasSsh(id: string): boolean {
    return this.sshIds.has(id);
  }

  async syncLocal(name: string, dest: string, opts: SyncOptions, signal: AbortSignal): Promise<SyncStats> {
    this.throwIfClosed();
    const call = this.nextCall++;
    const receiver = new SyncReceiver(dest, {
      requestFiles: (indexes) => this.channel.send({ syncNeed: { call, indexes } }),
      holdInput: () => this.channel.holdInput(),
    });
    this.syncs.set(call, receiver);
    const onAbort = () => {
      this.channel.send({ callCancel: { call } });
      receiver.fail(signal.reason instanceof Error ? signal.reason : new Error("the build was cancelled"));
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
    this.channel.send({
      syncRequest: { call, name, include: [...(opts.include ?? [])], exclude: [...(opts.exclude ?? [])] },
    });
    try {
      return await receiver.result;
    } finally {
      signal.removeEventListener("abort", onAbort);
      this.syncs.delete(call);
    }
  }

  async getSecret(id: string): Promise<Buffer | undefined> {
    const call = this.nextCall++;
    const reply = this.awaitReply(call);
    this.channel.send({ secretRequest: { call, id } });
    const r = await reply;
    return r.found ? Buffer.from(r.data ?? []) : undefined;
  }

  async registryCredentials(host: string): Promise<RegistryCredentials | undefined> {
    // A client that predates the question would never answer it.
    if (!this.answersCredentials) return undefined;
    const call = this.nextCall++;
    const reply = this.awaitReply(call);
    this.channel.send({ credentialsRequest: { call, host } });
    const r = await reply;
    return r.found && r.credentials ? credentialsFromWire(r.credentials) : undefined;
  }

  async openSshAgent(id: string): Promise<Duplex | undefined> {
    const stream = this.nextCall++;
    const reply = this.awaitReply(stream);
    this.channel.send({ sshOpen: { stream, id } });
    if (!(await reply).found) return undefined;
    let writeEnded = false;
    const endWrites = (error?: string) => {
      if (writeEnded) return;
      writeEnded = true;
      this.channel.send({ sshData: error ? { stream, eof: true, error } : { stream, eof: true } });
    };
    const duplex = new Duplex({
      read() {},
      write: (chunk: Buffer, _encoding, callback) => {
        this.channel.send({ sshData: { stream, data: chunk } });
        callback();
      },
      final: (callback) => {
        endWrites();
        callback();
      },
      destroy: (err, callback) => {
        endWrites(err?.message);
        this.sshStreams.delete(stream);
        callback(err);
      },
    });
    this.sshStreams.set(stream, duplex);
    return duplex;
  }

  openExport(target: ExportTarget): Promise<{ stream: Writable; done: Promise<void> }> {
    return this.openWriteStream((stream) => ({
      exportOpen: {
        stream,
        output: target.output,
        kind: target.kind,
        ...(target.subdir !== undefined ? { subdir: target.subdir } : {}),
      },
    }));
  }

  /** Sends a numbered request and waits for the client's reply to it. */
  private request(message: (call: number) => BuildServerMessage): Promise<WireSessionReply> {
    const call = this.nextCall++;
    const reply = this.awaitReply(call);
    this.channel.send(message(call));
    return reply;
  }

  /** Opens a stream of bytes to the client (an export, a cache file write) with credit-based flow. */
  private async openWriteStream(
    open: (stream: number) => BuildServerMessage,
  ): Promise<{ stream: Writable; done: Promise<void> }> {
    const stream = this.nextCall++;
    const reply = this.awaitReply(stream);
    this.channel.send(open(stream));
    await reply;
    const writer = new ExportWriter(stream, this.channel);
    let resolveDone!: () => void;
    let rejectDone!: (err: Error) => void;
    const done = new Promise<void>((resolve, reject) => {
      resolveDone = resolve;
      rejectDone = reject;
    });
    done.catch(() => {});
    this.exports.set(stream, { writer, resolveDone, rejectDone });
    done.finally(() => this.exports.delete(stream)).catch(() => {});
    return { stream: writer, done };
  }

  private async readCacheFile(dir: string, path: string): Promise<Readable | undefined> {
    const call = this.nextCall++;
    const read: CacheFileRead = {
      readable: new Readable({
        read: () => {
          const release = read.release;
          read.release = undefined;
          release?.();
        },
        destroy: (err, callback) => {
          read.release?.();
          // Given up before the end: the client can stop reading the file.
          if (this.cacheReads.delete(call)) this.channel.send({ callCancel: { call } });
          callback(err);
        },
      }),
    };
    // Registered before asking: the file's first bytes may follow the reply at once.
    this.cacheReads.set(call, read);
    const reply = this.awaitReply(call);
    this.channel.send({ cacheDirRequest: { call, dir, path, op: "read" } });
    try {
      if ((await reply).found) return read.readable;
    } catch (err) {
      this.cacheReads.delete(call);
      throw err;
    }
    this.cacheReads.delete(call);
    return undefined;
  }

  private onCacheDirData(data: WireStreamData): void {
    const read = this.cacheReads.get(data.stream);
    if (!read) return;
    if (data.data?.length && !read.readable.push(Buffer.from(data.data)) && !read.release)
      read.release = this.channel.holdInput();
    if (data.error !== undefined) {
      this.cacheReads.delete(data.stream);
      read.readable.destroy(new Error(`the client failed to read a local cache file: ${data.error}`));
    } else if (data.eof) {
      this.cacheReads.delete(data.stream);
      read.readable.push(null);
    }
  }

  /** Routes a client message to the call or stream it belongs to; false when it is not a session message. */
  handle(message: BuildClientMessage): boolean {
    if ("syncEntries" in message) this.syncs.get(message.syncEntries.call)?.onEntries(message.syncEntries);
    else if ("syncData" in message) this.syncs.get(message.syncData.call)?.onData(message.syncData);
    else if ("reply" in message) this.onReply(message.reply);
    else if ("sshData" in message) this.onSshData(message.sshData);
    else if ("cacheDirData" in message) this.onCacheDirData(message.cacheDirData);
    else if ("exportCredit" in message) {
      this.exports.get(message.exportCredit.stream)?.writer.credit(Number(message.exportCredit.bytes));
    } else if ("exportEnd" in message) {
      const open = this.exports.get(message.exportEnd.stream);
      if (open && message.exportEnd.error !== undefined) open.rejectDone(new Error(message.exportEnd.error));
      else open?.resolveDone();
    } else return false;
    return true;
  }

  /** Fails everything still waiting on the client: the build stream is gone. */
  close(err: Error): void {
    if (this.closedWith) return;
    this.closedWith = err;
    for (const p of this.replies.values()) p.reject(err);
    this.replies.clear();
    for (const s of this.syncs.values()) s.fail(err);
    for (const d of this.sshStreams.values()) d.destroy(err);
    const reads = [...this.cacheReads.values()];
    this.cacheReads.clear();
    for (const r of reads) r.readable.destroy(err);
    for (const e of this.exports.values()) {
      e.writer.destroy(err);
      e.rejectDone(err);
    }
  }

  private onReply(reply: WireSessionReply): void {
    const sync = this.syncs.get(reply.call);
    if (sync && reply.error !== undefined) {
      sync.fail(new Error(reply.error));
      return;
    }
    const pending = this.replies.get(reply.call);
    if (!pending) return;
    this.replies.delete(reply.call);
    if (reply.error !== undefined) pending.reject(new Error(reply.error));
    else pending.resolve(reply);
  }

  private onSshData(data: WireStreamData): void {
    const duplex = this.sshStreams.get(data.stream);
    if (!duplex) return;
    if (data.data?.length) duplex.push(Buffer.from(data.data));
    if (data.error !== undefined) duplex.destroy(new Error(`SSH agent connection: ${data.error}`));
    else if (data.eof) duplex.push(null);
  }

  private awaitReply(call: number): Promise<WireSessionReply> {
    this.throwIfClosed();
    return new Promise((resolve, reject) => this.replies.set(call, { resolve, reject }));
  }

  private throwIfClosed(): void {
    if (this.closedWith) throw this.closedWith;
  }
}
