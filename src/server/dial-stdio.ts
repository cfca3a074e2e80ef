// `kilnd dial-stdio`: joins a byte stream (stdin/stdout) to the running daemon's socket, so that a
// client can reach the engine through anything that carries a process's stdio — `docker exec`,
// `kubectl exec`, ssh. The bytes are passed through untouched; the client speaks gRPC over them.
import { connect, type Socket } from "node:net";
import type { Readable, Writable } from "node:stream";
import { type EngineAddress, formatEngineAddress } from "./engine-address.js";

/** Resolves when the daemon's side of the connection has closed. */
export function dialStdio(address: EngineAddress, input: Readable, output: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket: Socket =
      address.kind === "unix" ? connect(address.path) : connect({ host: address.host, port: address.port });
    let connected = false;
    socket.once("connect", () => {
      connected = true;
      // The client's end of input half-closes the connection; the daemon's answer still flows back.
      input.pipe(socket);
      socket.pipe(output, { end: false });
    });
    socket.on("error", (err: NodeJS.ErrnoException) => {
      if (!connected) {
        const hint = err.code === "ENOENT" || err.code === "ECONNREFUSED" ? " (is kilnd running?)" : "";
        reject(new Error(`cannot reach kilnd at ${formatEngineAddress(address)}: ${err.message}${hint}`));
      }
    });
    socket.once("close", () => {
      input.unpipe(socket);
      if (connected) resolve();
    });
  });
}
