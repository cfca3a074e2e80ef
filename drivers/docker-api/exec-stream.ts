// Processes run in a container through the Docker API (`docker exec`): their output collected, or
// their stdio as one byte stream. Without a TTY the daemon multiplexes stdout and stderr into one
// stream of frames — an 8-byte header (stream 1|2, three zero bytes, big-endian length) then the
// payload — which StdStreamDemuxer splits again.
import { Duplex, type Readable, Writable } from "node:stream";
import type Docker from "dockerode";

export type StdStream = "stdout" | "stderr";

/** Splits the daemon's multiplexed stream, calling `onFrame` with each payload in order. */
export class StdStreamDemuxer extends Writable {
  private pending: Buffer = Buffer.alloc(0);

  constructor(private readonly onFrame: (stream: StdStream, payload: Buffer) => void) {
    super();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error) => void): void {
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    while (this.pending.length >= 8) {
      const kind = this.pending[0];
      const size = this.pending.readUInt32BE(4);
      if (this.pending.length < 8 + size) break;
      const payload = this.pending.subarray(8, 8 + size);
      this.pending = this.pending.subarray(8 + size);
      if (kind === 1) this.onFrame("stdout", payload);
      else if (kind === 2) this.onFrame("stderr", payload);
      else if (kind !== 0) {
        done(new Error(`malformed exec stream: unknown stream ${kind}`));
        return;
      }
    }
    done();
  }
}

export interface ExecResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `cmd` in the container and waits for it to exit. */
export async function execCollect(container: Docker.Container, cmd: readonly string[]): Promise<ExecResult> {
  const exec = await container.exec({ Cmd: [...cmd], AttachStdout: true, AttachStderr: true, Tty: false });
  const stream = (await exec.start({ hijack: true, stdin: false })) as unknown as Readable;
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    const demux = new StdStreamDemuxer((s, b) => (s === "stdout" ? out : err).push(Buffer.from(b)));
    stream.on("error", reject);
    demux.on("error", reject);
    stream.on("end", resolve);
    stream.on("close", resolve);
    stream.pipe(demux);
  });
  const info = await exec.inspect();
  return {
    exitCode: info.ExitCode ?? -1,
    stdout: Buffer.concat(out).toString(),
    stderr: Buffer.concat(err).toString(),
  };
}

/**
 * Runs `cmd` in the container with its stdin and stdout joined into one Duplex: what is written
 * goes to the process's stdin, what it prints comes out. Its stderr is kept to explain a failure:
 * when the process exits without output the Duplex fails with what it printed there.
 */
export async function execDuplex(container: Docker.Container, cmd: readonly string[]): Promise<Duplex> {
  const exec = await container.exec({
    Cmd: [...cmd],
    AttachStdin: true,
    AttachStdout: true,
    AttachStderr: true,
    Tty: false,
  });
  const socket = (await exec.start({ hijack: true, stdin: true })) as unknown as Duplex;
  let stderr = "";
  let sawOutput = false;
  const duplex = new Duplex({
    write(chunk: Buffer, _enc, done) {
      socket.write(chunk, (err) => done(err ?? undefined));
    },
    final(done) {
      // Half-close: the process sees EOF on stdin; its answer still flows back.
      socket.end();
      done();
    },
    read() {
      socket.resume();
    },
    destroy(err, done) {
      socket.destroy();
      done(err);
    },
  });
  const demux = new StdStreamDemuxer((s, payload) => {
    if (s === "stderr") {
      stderr = (stderr + payload.toString()).slice(-4096);
      return;
    }
    sawOutput = true;
    if (!duplex.push(Buffer.from(payload))) socket.pause();
  });
  socket.on("data", (chunk: Buffer) => demux.write(chunk));
  socket.on("end", () => {
    if (!sawOutput && stderr.trim()) duplex.destroy(new Error(stderr.trim()));
    else duplex.push(null);
  });
  socket.on("error", (err) => duplex.destroy(err));
  socket.on("close", () => {
    if (!duplex.destroyed && !duplex.readableEnded) duplex.push(null);
  });
  demux.on("error", (err) => duplex.destroy(err));
  return duplex;
}
