// Host key checking for ssh:// Docker hosts against the user's OpenSSH known_hosts file, as the
// ssh client the Docker CLI runs would check it: plain and hashed (`|1|salt|hash`) host names,
// `[host]:port` for ports other than 22, wildcards and negations, and `@revoked` keys.
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";

export type HostKeyVerdict = "known" | "unknown" | "changed" | "revoked";

/** The name known_hosts files use for a host and port. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

function globToRegExp(pattern: string): RegExp {
  const escaped = pattern
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${escaped}$`, "i");
}

function hashedNameMatches(entry: string, name: string): boolean {
  const [, magic, salt, hash] = entry.split("|");
  if (magic !== "1" || salt === undefined || hash === undefined) return false;
  const digest = createHmac("sha1", Buffer.from(salt, "base64")).update(name).digest("base64");
  return digest === hash;
}

/** Whether a comma-separated host pattern list names `name` (a negated match rules it out). */
function patternsMatch(patterns: string, name: string): boolean {
  let matched = false;
  for (const p of patterns.split(",")) {
    if (p.startsWith("|")) {
      if (hashedNameMatches(p, name)) matched = true;
    } else if (p.startsWith("!")) {
      if (globToRegExp(p.slice(1)).test(name)) return false;
    } else if (globToRegExp(p).test(name)) {
      matched = true;
    }
  }
  return matched;
}

/** Checks the host's public key blob (SSH wire format) against the known_hosts text. */
export function checkHostKey(
  knownHosts: string,
  host: string,
  port: number,
  keyBlob: Buffer,
): HostKeyVerdict {
  const name = knownHostsName(host, port);
  let listed = false;
  let known = false;
  for (const raw of knownHosts.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const fields = line.split(/\s+/);
    const marker = fields[0]!.startsWith("@") ? fields.shift() : undefined;
    const [patterns, , key] = fields;
    if (patterns === undefined || key === undefined || !patternsMatch(patterns, name)) continue;
    const same = Buffer.from(key, "base64").equals(keyBlob);
    if (marker === "@revoked") {
      if (same) return "revoked";
    } else if (marker === undefined) {
      listed = true;
      if (same) known = true;
    }
  }
  if (known) return "known";
  return listed ? "changed" : "unknown";
}

/** The known_hosts text of `file`, or "" when there is none. */
export function readKnownHosts(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return "";
  }
}
