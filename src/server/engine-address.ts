// Engine addresses as users write them: `unix:///run/kiln/kilnd.sock` or `tcp://host:port`.
import { isAbsolute, resolve } from "node:path";

export type EngineAddress =
  | { readonly kind: "unix"; readonly path: string }
  | { readonly kind: "tcp"; readonly host: string; readonly port: number };

/** The daemon's default socket: /run/kiln for root, $XDG_RUNTIME_DIR/kiln otherwise (as rootless BuildKit does). */
export function defaultEngineAddress(env: NodeJS.ProcessEnv = process.env): string {
  const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
  if (!isRoot && env.XDG_RUNTIME_DIR) return `unix://${env.XDG_RUNTIME_DIR}/kiln/kilnd.sock`;
  return "unix:///run/kiln/kilnd.sock";
}

export function parseEngineAddress(address: string): EngineAddress {
  if (address.startsWith("unix://")) {
    const path = address.slice("unix://".length);
    if (!path)
      throw new Error(`invalid address ${address}: give a socket path, e.g. unix:///run/kiln/kilnd.sock`);
    return { kind: "unix", path: isAbsolute(path) ? path : resolve(path) };
  }
  if (address.startsWith("tcp://")) {
    const url = new URL(address);
    const port = Number(url.port);
    if (!url.hostname || !url.port || !Number.isInteger(port) || port < 0 || port > 65535) {
      throw new Error(`invalid address ${address}: give a host and port, e.g. tcp://127.0.0.1:1234`);
    }
    return { kind: "tcp", host: url.hostname.replace(/^\[(.*)\]$/, "$1"), port };
  }
  throw new Error(`unsupported address ${address}: use unix:///path/to/socket or tcp://host:port`);
}

export function formatEngineAddress(a: EngineAddress): string {
  if (a.kind === "unix") return `unix://${a.path}`;
  return `tcp://${a.host.includes(":") ? `[${a.host}]` : a.host}:${a.port}`;
}
