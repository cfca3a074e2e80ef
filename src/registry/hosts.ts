// Where a registry name points: Docker Hub's API host, which hosts count as loopback, and whether
// a host may be spoken to over plain HTTP.
import { isIP } from "node:net";
import { DOCKER_HUB } from "../oci/image-ref.js";

/** The host Docker Hub's registry API answers on; `docker.io` itself serves no `/v2/`. */
export const DOCKER_HUB_API_HOST = "registry-1.docker.io";
/** The key `docker login` stores Docker Hub credentials under in config.json. */
export const DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/";

/** The `host[:port]` to send API requests to for a registry name. */
export function registryApiHost(registry: string): string {
  return registry === DOCKER_HUB || registry === "index.docker.io" ? DOCKER_HUB_API_HOST : registry;
}

/** Splits `host[:port]` and `[v6]:port`; the hostname keeps no brackets. */
export function splitHostPort(hostPort: string): { hostname: string; port?: number } {
  if (hostPort.startsWith("[")) {
    const end = hostPort.indexOf("]");
    const hostname = hostPort.slice(1, end);
    const rest = hostPort.slice(end + 1);
    return rest.startsWith(":") ? { hostname, port: Number(rest.slice(1)) } : { hostname };
  }
  const colon = hostPort.lastIndexOf(":");
  if (colon >= 0 && hostPort.indexOf(":") === colon) {
    return { hostname: hostPort.slice(0, colon), port: Number(hostPort.slice(colon + 1)) };
  }
  return { hostname: hostPort };
}

/** localhost, 127.0.0.0/8 and ::1: Docker treats these as insecure registries without being told. */
export function isLoopbackHost(hostPort: string): boolean {
  const { hostname } = splitHostPort(hostPort);
  if (hostname === "localhost" || hostname.endsWith(".localhost")) return true;
  if (isIP(hostname) === 4) return hostname.startsWith("127.");
  if (isIP(hostname) === 6) return hostname === "::1" || hostname === "0:0:0:0:0:0:0:1";
  return false;
}

/**
 * Whether `registry` matches an insecure-registries entry: an exact `host[:port]`, a bare host
 * matching any port, or an IPv4 CIDR such as `10.0.0.0/8` (as dockerd's `insecure-registries`).
 */
export function matchesInsecureList(registry: string, insecure: readonly string[]): boolean {
  const { hostname } = splitHostPort(registry);
  for (const entry of insecure) {
    const e = entry.replace(/^[a-z]+:\/\//, "").replace(/\/+$/, "");
    if (e === registry || e === hostname) return true;
    const cidr = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(e);
    if (cidr && isIP(hostname) === 4 && inCidr(hostname, cidr[1]!, Number(cidr[2]))) return true;
  }
  return false;
}

function ipv4ToInt(ip: string): number {
  return ip.split(".").reduce((acc, part) => (acc << 8) + Number(part), 0) >>> 0;
}

function inCidr(ip: string, base: string, bits: number): boolean {
  if (bits === 0) return true;
  const mask = (~0 << (32 - bits)) >>> 0;
  return (ipv4ToInt(ip) & mask) === (ipv4ToInt(base) & mask);
}
