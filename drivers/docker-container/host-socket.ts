// The engine's API socket published on the Docker host. When the Docker daemon is this machine's
// (a unix:// endpoint) and the client is root, the container's socket directory is bound to a
// host directory, and builds dial the socket directly: no `docker exec … kilnd dial-stdio`
// (about 110 ms) and no Docker API client (about 90 ms to load) on the way to every build. Any
// failure to reach it (a client inside another container, a container created before this
// existed, a stopped engine) falls back to the exec path, which always works.
import { connect } from "node:net";
import { join } from "node:path";
import type { DockerEndpoint } from "../docker-api/docker-endpoint.js";

/** Where kilnd listens inside the engine container (its default address as root). */
export const ENGINE_SOCKET_DIR = "/run/kiln";
const SOCKET_NAME = "kilnd.sock";
/** Host directories of published engine sockets, one per container. */
const HOST_SOCKETS_ROOT = "/run/kiln/engines";

/** The host directory bound to the container's socket directory, when the fast path applies. */
export function hostSocketDir(endpoint: DockerEndpoint, containerName: string): string | undefined {
  if (!endpoint.host.startsWith("unix://") || process.getuid?.() !== 0) return undefined;
  return join(HOST_SOCKETS_ROOT, containerName);
}

export function hostSocketPath(dir: string): string {
  return join(dir, SOCKET_NAME);
}

/** Whether something accepts connections on the unix socket at `path` (within a short time). */
export function socketAnswers(path: string, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}
