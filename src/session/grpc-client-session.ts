// The client side of a session carried over a build stream: answers the engine's requests with the
// client's own BuildSession (its directories, secrets, SSH agents, registry credentials, output
// destinations and local cache directories), and describes up front what the engine must know
// without asking (directory keys, SSH ids, which of the optional questions it answers).
import type { Duplex, Readable, Writable } from "node:stream";
import type { BuildRequest } from "../client/build-request.js";
import type { RegistryCredentials } from "../registry/credentials.js";
import type {
  BuildClientMessage,
  BuildServerMessage,
  MessageSink,
  WireCacheDirRequest,
  WireExportOpen,
  WireRegistryCredentials,
  WireSessionInfo,
  WireStreamData,
  WireSyncRequest,
} from "../server/engine-proto.js";
import { SyncSender } from "./grpc-sync-sender.js";
import { type BuildSession, CONTEXT_LOCAL_NAME, type ExportTarget, namedContextLocalName } from "./types.js";

const EXPORT_KINDS: readonly ExportTarget["kind"][] = ["unpack-tar", "file", "docker-load"];

/** What the engine learns at the start: stable keys of the request's local directories and the SSH ids on offer. */
export function describeSession(session: BuildSession, request: BuildRequest): WireSessionInfo {
  const names = [CONTEXT_LOCAL_NAME];
  for (const [name, ctx] of Object.entries(request.buildContexts)) {
    if (ctx.kind === "local") names.push(namedContextLocalName(name));
  }
  const sharedKeys: Record<string, string> = {};
  for (const name of names) sharedKeys[name] = session.sharedKey(name);
  return {
    id: session.id,
    sharedKeys,
    sshIds: request.ssh.map((s) => s.id).filter((id) => session.hasSsh(id)),
    registryCredentials: session.registryCredentials !== undefined,
    cacheDirs: session.cacheDirs !== undefined,
  };
}

/** Credentials as the wire carries them: only the fields that are set. */
export function credentialsToWire(creds: RegistryCredentials): WireRegistryCredentials {
  const wire: WireRegistryCredentials = {};
  if (creds.username !== undefined) wire.username = creds.username;
  if (creds.password !== undefined) wire.secret = creds.password;
  if (creds.identityToken !== undefined) wire.identityToken = creds.identityToken;
  return wire;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export class SessionResponder {
  private readonly syncs = new Map<number, SyncSender>();
  private readonly sshStreams = new Map<number, Duplex>();
  private readonly exports = new Map<number, Writable>();
  private readonly cacheReads = new Map<number, Readable>();
  private closed = false;

  constructor(
    private readonly session: BuildSession,
    private readonly sink: MessageSink<BuildClientMessage>,
  ) {}

  /** Answers one engine message; false when it is not a session message. */
  handle(msg: BuildServerMessage): boolean {
    if ("syncRequest" in msg) this.startSync(msg.syncRequest);
    else if ("syncNeed" in msg) this.sendSyncFiles(msg.syncNeed.call, msg.syncNeed.indexes ?? []);
    else if ("secretRequest" in msg) this.answerSecret(msg.secretRequest.call, msg.secretRequest.id);
    else if ("credentialsRequest" in msg)
      this.answerCredentials(msg.credentialsRequest.call, msg.credentialsRequest.host);
    else if ("sshOpen" in msg) this.openSsh(msg.sshOpen.stream, msg.sshOpen.id);
    else if ("sshData" in msg) this.onSshData(msg.sshData);
    else if ("exportOpen" in msg) this.openExport(msg.exportOpen);
    else if ("exportData" in msg) this.onExportData(msg.exportData);
    else if ("cacheDirRequest" in msg) this.onCacheDirRequest(msg.cacheDirRequest);
    else if ("callCancel" in msg) this.cancelCall(msg.callCancel.call);
    else return false;
    return true;
  }

  /** Stops everything in flight: the build is over or the stream broke. */
  close(): void {
    this.closed = true;
    for (const s of this.syncs.values()) s.abort();
    this.syncs.clear();
    for (const d of this.sshStreams.values()) d.destroy();
    this.sshStreams.clear();
    for (const w of this.exports.values())
      w.destroy(new Error("the build ended before its export was complete"));
    this.exports.clear();
    for (const r of this.cacheReads.values()) r.destroy();
    this.cacheReads.clear();
  }

  private startSync({ call, name, include, exclude }: WireSyncRequest): void {
    const dir = this.session.localDirectory?.(name);
    if (!dir) {
      this.replyError(
        call,
        this.session.localDirectory
          ? `the client has no local directory named ${JSON.stringify(name)}`
          : `this client cannot send its local directory ${JSON.stringify(name)} to a remote engine`,
      );
      return;
    }
    const sender = new SyncSender(dir, call, this.sink);
    this.syncs.set(call, sender);
    sender.sendEntries({ include: include ?? [], exclude: exclude ?? [] }).catch((err) => {
      this.syncs.delete(call);
      this.replyError(call, `cannot read the local directory ${dir}: ${message(err)}`);
    });
  }

  private sendSyncFiles(call: number, indexes: number[]): void {
    const sender = this.syncs.get(call);
    if (!sender) return;
    sender
      .sendFiles(indexes)
      .catch((err) => this.replyError(call, message(err)))
      .finally(() => this.syncs.delete(call));
  }

  private answerSecret(call: number, id: string): void {
    this.session.getSecret(id).then(
      (value) =>
        this.send({
          reply: value === undefined ? { call, found: false } : { call, found: true, data: value },
        }),
      (err) => this.replyError(call, `secret ${id}: ${message(err)}`),
    );
  }

  private answerCredentials(call: number, host: string): void {
    const lookup = this.session.registryCredentials?.bind(this.session);
    if (!lookup) {
      this.send({ reply: { call, found: false } });
      return;
    }
    lookup(host).then(
      (creds) =>
        this.send({
          reply: creds
            ? { call, found: true, credentials: credentialsToWire(creds) }
            : { call, found: false },
        }),
      // The message names the registry and the helper, never a secret.
      (err) => this.replyError(call, `registry credentials for ${host}: ${message(err)}`),
    );
  }

  private cancelCall(call: number): void {
    this.syncs.get(call)?.abort();
    this.syncs.delete(call);
    this.sshStreams.get(call)?.destroy();
    this.exports.get(call)?.destroy(new Error("the engine cancelled the export"));
    this.cacheReads.get(call)?.destroy();
  }

  private openSsh(stream: number, id: string): void {
    this.session.openSshAgent(id).then(
      (agent) => {
        if (!agent) return this.send({ reply: { call: stream, found: false } });
        if (this.closed) return agent.destroy();
        this.sshStreams.set(stream, agent);
        let ended = false;
        const end = (error?: string) => {
          if (ended) return;
          ended = true;
          this.send({ sshData: error === undefined ? { stream, eof: true } : { stream, eof: true, error } });
        };
        agent.on("data", (data: Buffer) => this.send({ sshData: { stream, data } }));
        agent.on("end", () => end());
        agent.on("error", (err) => end(err.message));
        agent.on("close", () => {
          end();
          this.sshStreams.delete(stream);
        });
        this.send({ reply: { call: stream, found: true } });
      },
      (err) => this.replyError(stream, `SSH agent ${id}: ${message(err)}`),
    );
  }

  private onSshData(data: WireStreamData): void {
    const agent = this.sshStreams.get(data.stream);
    if (!agent) return;
    if (data.data?.length) agent.write(data.data);
    if (data.error !== undefined) agent.destroy();
    else if (data.eof) agent.end();
  }

  private openExport(open: WireExportOpen): void {
    const kind = open.kind as ExportTarget["kind"];
    if (!EXPORT_KINDS.includes(kind)) {
      this.replyError(open.stream, `unknown export kind ${JSON.stringify(open.kind)}`);
      return;
    }
    const target: ExportTarget = open.subdir
      ? { output: open.output, kind, subdir: open.subdir }
      : { output: open.output, kind };
    this.acceptStream(open.stream, this.session.openExport(target), message);
  }

  /**
   * Takes the engine's bytes for a stream the session opened (an export, a cache file write) and
   * reports how storing them ended.
   */
  private acceptStream(
    id: number,
    opened: Promise<{ stream: Writable; done: Promise<void> }>,
    describeError: (err: unknown) => string,
  ): void {
    opened.then(
      ({ stream, done }) => {
        if (this.closed) return stream.destroy();
        this.exports.set(id, stream);
        done
          .then(
            () => this.send({ exportEnd: { stream: id } }),
            (err) => this.send({ exportEnd: { stream: id, error: describeError(err) } }),
          )
          .finally(() => this.exports.delete(id));
        this.send({ reply: { call: id, found: true } });
      },
      (err) => this.replyError(id, describeError(err)),
    );
  }

  private onCacheDirRequest({ call, dir, path, op }: WireCacheDirRequest): void {
    const files = this.session.cacheDirs;
    if (!files) {
      this.replyError(call, "this client serves no local cache directories");
      return;
    }
    const describe = (err: unknown) => `local cache directory ${dir} (${path}): ${message(err)}`;
    const answer = <T>(result: Promise<T>, reply: (value: T) => BuildClientMessage) =>
      result.then(
        (value) => this.send(reply(value)),
        (err) => this.replyError(call, describe(err)),
      );
    switch (op) {
      case "read":
        answer(files.read(dir, path), (file) => {
          if (file) this.sendCacheFile(call, file);
          return { reply: { call, found: file !== undefined } };
        });
        break;
      case "exists":
        answer(files.exists(dir, path), (found) => ({ reply: { call, found } }));
        break;
      case "list":
        answer(files.list(dir, path), (names) => ({ reply: { call, found: true, names } }));
        break;
      case "remove":
        answer(files.remove(dir, path), () => ({ reply: { call, found: true } }));
        break;
      case "write":
        this.acceptStream(call, files.openWrite(dir, path), describe);
        break;
      default:
        this.replyError(call, `unknown local cache directory operation ${JSON.stringify(op)}`);
    }
  }

  /** Streams a cache file to the engine after its opening reply, waiting whenever the stream is full. */
  private sendCacheFile(call: number, file: Readable): void {
    if (this.closed) {
      file.destroy();
      return;
    }
    this.cacheReads.set(call, file);
    // Deferred, so the opening reply goes first.
    queueMicrotask(async () => {
      try {
        for await (const data of file as AsyncIterable<Buffer>) {
          if (this.closed) return;
          if (!this.sink.send({ cacheDirData: { stream: call, data } })) await this.sink.drained();
        }
        this.send({ cacheDirData: { stream: call, eof: true } });
      } catch (err) {
        this.send({ cacheDirData: { stream: call, eof: true, error: message(err) } });
      } finally {
        this.cacheReads.delete(call);
        file.destroy();
      }
    });
  }

  private onExportData(data: WireStreamData): void {
    const out = this.exports.get(data.stream);
    if (!out) return;
    if (data.data?.length) {
      const bytes = data.data.length;
      // Credit goes back once the destination took the bytes: a slow disk slows the engine, not memory.
      out.write(data.data, (err) => {
        if (!err) this.send({ exportCredit: { stream: data.stream, bytes } });
      });
    }
    if (data.error !== undefined) out.destroy(new Error(`the engine failed while exporting: ${data.error}`));
    else if (data.eof) out.end();
  }

  private replyError(call: number, error: string): void {
    this.send({ reply: { call, error } });
  }

  private send(message: BuildClientMessage): void {
    if (!this.closed) this.sink.send(message);
  }
}
