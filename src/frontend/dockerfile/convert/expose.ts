// EXPOSE port specs (BuildKit's convert_expose.go): `[ip:][hostPort:]port[-end][/proto]` → the
// `port/proto` keys of ExposedPorts, with the ExposeProtoCasing and ExposeInvalidFormat checks.
import { isIP } from "node:net";

export interface PortFindings {
  protoCasing(rawPort: string): void;
  invalidFormat(rawPort: string): void;
}

function splitParts(raw: string): [string, string, string] {
  const parts = raw.split(":");
  switch (parts.length) {
    case 1:
      return ["", "", parts[0]!];
    case 2:
      return ["", parts[0]!, parts[1]!];
    case 3:
      return [parts[0]!, parts[1]!, parts[2]!];
    default: {
      const n = parts.length;
      return [parts.slice(0, n - 2).join(":"), parts[n - 2]!, parts[n - 1]!];
    }
  }
}

function splitProtoPort(raw: string): [string, string] {
  const slash = raw.indexOf("/");
  const port = slash < 0 ? raw : raw.slice(0, slash);
  const proto = slash < 0 ? "" : raw.slice(slash + 1);
  if (port === "") throw new Error("no port specified");
  switch (proto.toLowerCase()) {
    case "":
      return ["tcp", port];
    case "tcp":
    case "udp":
    case "sctp":
      return [proto, port];
    default:
      throw new Error(`invalid proto: ${proto}`);
  }
}

function parsePortNumber(raw: string): number {
  if (raw === "") throw new Error("value is empty");
  if (!/^[+-]?[0-9]+$/.test(raw)) throw new Error("invalid syntax");
  const n = Number(raw);
  if (n < 0 || n > 65535) throw new Error("value out of range (0–65535)");
  return n;
}

function parsePortRange(ports: string): [number, number] {
  if (ports === "") throw new Error("empty string specified for ports");
  const dash = ports.indexOf("-");
  const start = dash < 0 ? ports : ports.slice(0, dash);
  const end = dash < 0 ? "" : ports.slice(dash + 1);
  let s: number;
  try {
    s = parsePortNumber(start);
  } catch (e) {
    throw new Error(`invalid start port '${start}': ${(e as Error).message}`);
  }
  if (dash < 0 || start === end) return [s, s];
  let e: number;
  try {
    e = parsePortNumber(end);
  } catch (err) {
    throw new Error(`invalid end port '${end}': ${(err as Error).message}`);
  }
  if (e < s) throw new Error(`invalid port range: ${ports}`);
  return [s, e];
}

function parsePort(rawPort: string, findings?: PortFindings): string[] {
  let [ip, hostPort, containerPort] = splitParts(rawPort);
  let proto: string;
  try {
    [proto, containerPort] = splitProtoPort(containerPort);
  } catch (e) {
    throw new Error(`invalid port: ${JSON.stringify(rawPort)}: ${(e as Error).message}`);
  }
  if (findings) {
    if (proto !== proto.toLowerCase()) findings.protoCasing(rawPort);
    if (ip !== "" || hostPort !== "") findings.invalidFormat(rawPort);
  }
  if (ip !== "" && ip[0] === "[") {
    const m = /^\[([^\]]*)\]$/.exec(ip);
    if (!m) throw new Error(`invalid IP address ${ip}`);
    ip = m[1]!;
  }
  if (ip !== "" && isIP(ip) === 0) throw new Error(`invalid IP address: ${ip}`);
  let start: number;
  let end: number;
  try {
    [start, end] = parsePortRange(containerPort);
  } catch {
    throw new Error(`invalid containerPort: ${containerPort}`);
  }
  if (hostPort !== "") {
    let hs: number;
    let he: number;
    try {
      [hs, he] = parsePortRange(hostPort);
    } catch {
      throw new Error(`invalid hostPort: ${hostPort}`);
    }
    if (end - start !== he - hs && end !== start)
      throw new Error(
        `invalid ranges specified for container and host Ports: ${containerPort} and ${hostPort}`,
      );
  }
  if (end - start > 65535) throw new Error(`invalid port range: ${containerPort}`);
  const out: string[] = [];
  for (let p = start; p <= end; p++) out.push(`${p}/${proto.toLowerCase()}`);
  return out;
}

/** The ExposedPorts keys for EXPOSE's (expanded) words. Throws on an invalid spec. */
export function parsePorts(ports: readonly string[], findings?: PortFindings): string[] {
  const out: string[] = [];
  for (const p of ports) out.push(...parsePort(p, findings));
  return out;
}
