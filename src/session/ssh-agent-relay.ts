// The client's SSH agent as a unix socket on the engine's host: each connection to the socket is
// relayed to the agent over the session, so RUN --mount=type=ssh and git sources over ssh
// authenticate with the client's keys without the engine ever holding them.
import { createServer, type Server } from "node:net";
import { pipeline } from "node:stream/promises";
import type { BuildSession } from "./types.js";

/** Listens on `socketPath` and relays every connection to the session's agent `id`. */
export async function listenSshAgentRelay(
  session: BuildSession,
  id: string,
  socketPath: string,
): Promise<Server> {
  const server = createServer((conn) => {
    session
      .openSshAgent(id)
      .then((agent) => {
        if (!agent) return conn.destroy();
        pipeline(conn, agent).catch(() => conn.destroy());
        pipeline(agent, conn).catch(() => conn.destroy());
      })
      .catch(() => conn.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(socketPath, () => resolve());
  });
  return server;
}

/** Stops the relay from taking connections; resolves once those it took have ended. */
export function closeServer(server: Server): Promise<void> {
  return new Promise<void>((r) => server.close(() => r()));
}
