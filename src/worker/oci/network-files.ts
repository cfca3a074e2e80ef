// The /etc/hosts and /etc/resolv.conf a container sees, generated per run as BuildKit does.
import { readFile } from "node:fs/promises";
import { isIP } from "node:net";
import type { NetworkMode } from "../../llb/ops.js";
import { isNotFound } from "./root-path.js";

export const DEFAULT_HOSTNAME = "buildkitsandbox";

export interface ExtraHost {
  readonly host: string;
  readonly ip: string;
}

/** localhost (with the container's hostname) for IPv4 and IPv6, then one line per extra host. */
export function hostsFileContent(hostname: string, extraHosts: readonly ExtraHost[] = []): string {
  let out = `127.0.0.1\tlocalhost ${hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n`;
  for (const h of extraHosts) {
    if (isIP(h.ip) === 0)
      throw new Error(`invalid IP address ${JSON.stringify(h.ip)} for extra host ${h.host}`);
    if (!/^[^\s#]+$/.test(h.host)) throw new Error(`invalid extra host name ${JSON.stringify(h.host)}`);
    out += `${h.ip}\t${h.host}\n`;
  }
  return out;
}

function isLoopbackAddress(addr: string): boolean {
  const a = addr.split("%")[0]!;
  if (isIP(a) === 4) return a.startsWith("127.");
  if (isIP(a) === 6) return a === "::1" || /^(0{0,4}:){7}0{0,3}1$/.test(a);
  return false;
}

/**
 * The resolv.conf for a container on `network`: the host's as it is for `host`; otherwise with
 * loopback nameservers dropped, since a resolver on the host's loopback is not reachable (or not
 * meant to be reached) from the container. Nothing is put in their place, so no outside resolver
 * is contacted that the host did not name.
 */
export function resolvConfContent(hostResolvConf: string, network: NetworkMode): string {
  if (network === "host") return hostResolvConf;
  const lines = hostResolvConf.split("\n").filter((line) => {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    return !(m && isLoopbackAddress(m[1]!));
  });
  return lines.join("\n");
}

export function nameservers(resolvConf: string): string[] {
  const out: string[] = [];
  for (const line of resolvConf.split("\n")) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m) out.push(m[1]!);
  }
  return out;
}

async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/**
 * The host resolv.conf to start from. With systemd-resolved's stub (127.0.0.53) as the only nameserver,
 * non-host networks use the upstream list systemd-resolved keeps, as BuildKit does.
 */
export async function hostResolvConf(
  network: NetworkMode,
  files: { main: string; systemdResolved: string } = {
    main: "/etc/resolv.conf",
    systemdResolved: "/run/systemd/resolve/resolv.conf",
  },
): Promise<string> {
  const main = (await readOptional(files.main)) ?? "";
  if (network !== "host") {
    const ns = nameservers(main);
    if (ns.length === 1 && ns[0] === "127.0.0.53") {
      const upstream = await readOptional(files.systemdResolved);
      if (upstream !== undefined) return upstream;
    }
  }
  return main;
}
