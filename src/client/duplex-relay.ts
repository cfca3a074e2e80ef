// Reaches an engine through any byte stream (a `docker exec … kilnd dial-stdio`, `kubectl exec`,
// an ssh channel): gRPC's client dials sockets only, so a private unix socket in a fresh 0700
// directory stands in for the engine, and each connection to it is joined to a new stream from
// the factory. A reconnect after a dropped stream therefore opens a new one.
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Duplex } from "node:stream";

export type DuplexFactory = () => Duplex | Promise<Duplex>;

export class DuplexRelay {
  private readonly live = new Set<Socket>();
  /** Why the last stream could not be opened: what a failed connect should tell the user. */
  lastError?: Error;

  private constructor(
    private readonly dir: string,
    private readonly server: Server,
    /** The address to give the gRPC client. */
    readonly address: string,
  ) {}

  static async open(factory: DuplexFactory): Promise<DuplexRelay> {
    const dir = await mkdtemp(join(tmpdir(), "kiln-engine-"));
    const socketPath = join(dir, "engine.sock");
    const server = createServer();
    const relay = new DuplexRelay(dir, server, `unix:${socketPath}`);
    server.on("connection", (conn) => relay.join(conn, factory));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(socketPath, () => resolve());
    });
    server.unref();
    return relay;
  }

  async close(): Promise<void> {
    for (const conn of this.live) conn.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await rm(this.dir, { recursive: true, force: true });
  }

  private join(conn: Socket, factory: DuplexFactory): void {
    this.live.add(conn);
    conn.once("close", () => this.live.delete(conn));
    conn.on("error", () => conn.destroy());
    Promise.resolve()
      .then(factory)
      .then(
        (stream) => {
          if (conn.destroyed) return stream.destroy();
          stream.on("error", (err) => {
            this.lastError = err;
            conn.destroy();
          });
          conn.once("close", () => stream.destroy());
          stream.once("close", () => conn.destroy());
          conn.pipe(stream);
          stream.pipe(conn);
        },
        (err: Error) => {
          this.lastError = err;
          conn.destroy();
        },
      );
  }
}
