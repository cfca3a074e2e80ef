// What the client forwards for one `--ssh ID[=PATH,…]`, as Buildx reads it: the client's running
// agent (the one socket given, else $SSH_AUTH_SOCK), or private key files the client reads at the
// start of the build (parsed by ssh2) and answers agent requests for itself, so the keys never
// leave the client — the engine only ever sees signatures.
import { sign as cryptoSign } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { connect } from "node:net";
import { Duplex } from "node:stream";
import type { ParsedKey } from "ssh2";
import type { SshSpec } from "../client/build-request.js";

export type SshAgentSource =
  | { readonly kind: "socket"; readonly path: string }
  /** No path given: $SSH_AUTH_SOCK, read when a step connects (the variable may be unset). */
  | { readonly kind: "env-socket" }
  | { readonly kind: "keys"; readonly keys: readonly ParsedKey[] };

type Ssh2 = typeof import("ssh2");
// ssh2 (CommonJS) parses key files; it loads only when a build forwards some.
const loadSsh2 = (): Ssh2 => createRequire(import.meta.url)("ssh2") as Ssh2;

/**
 * Reads what `--ssh ID=PATHS` names: one agent socket, or any number of private key files (never
 * both). Key files are parsed now, so a bad path or key fails the build before it starts.
 */
export function loadSshAgentSource(spec: SshSpec): SshAgentSource {
  const flag = `--ssh ${spec.id}`;
  if (spec.paths.length === 0) return { kind: "env-socket" };
  let socket: string | undefined;
  const keys: ParsedKey[] = [];
  for (const path of spec.paths) {
    let isSocket: boolean;
    try {
      isSocket = statSync(path).isSocket();
    } catch (err) {
      throw new Error(
        `${flag}=${path}: cannot read it (${(err as Error).message}): give an agent socket or a private key file`,
      );
    }
    if (isSocket) {
      if (socket !== undefined)
        throw new Error(`${flag}: only one agent socket can be forwarded per id, got ${socket} and ${path}`);
      socket = path;
    } else {
      keys.push(parsePrivateKey(flag, path));
    }
  }
  if (socket !== undefined && keys.length > 0)
    throw new Error(`${flag}: give either one agent socket or key files, not both (${spec.paths.join(",")})`);
  return socket !== undefined ? { kind: "socket", path: socket } : { kind: "keys", keys };
}

function parsePrivateKey(flag: string, path: string): ParsedKey {
  const parsed = loadSsh2().utils.parseKey(readFileSync(path));
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (key instanceof Error || key === undefined) {
    const reason = key instanceof Error ? key.message : "no key in the file";
    if (/passphrase/i.test(reason))
      throw new Error(
        `${flag}=${path}: the key is protected by a passphrase, which a build cannot ask for: add it to your ssh-agent (ssh-add ${path}) and pass ${flag} instead`,
      );
    throw new Error(`${flag}=${path}: not a private key ssh can use: ${reason}`);
  }
  if (!key.isPrivateKey())
    throw new Error(`${flag}=${path}: this is a public key; give the private key file`);
  return key;
}

/** A connection to the agent: the socket's, or an agent of this process that signs with the keys. */
export function connectSshAgent(id: string, source: SshAgentSource, env: NodeJS.ProcessEnv): Duplex {
  switch (source.kind) {
    case "socket":
      return connect(source.path);
    case "env-socket": {
      const path = env.SSH_AUTH_SOCK;
      if (!path) throw new Error(`--ssh ${id}: no agent socket given and SSH_AUTH_SOCK is not set`);
      return connect(path);
    }
    case "keys":
      return keyAgent(source.keys);
  }
}

// The agent protocol (draft-miller-ssh-agent) as far as ssh needs it to log in: list the keys,
// sign with one. Everything else — extensions such as session-bind@openssh.com, which ssh sends
// first, adding or removing keys — gets SSH_AGENT_FAILURE, which ssh treats as "not supported".
// (ssh2's AgentProtocol mis-frames the request that follows an unknown message, so it is not used.)
const SSH_AGENT_FAILURE = 5;
const SSH_AGENTC_REQUEST_IDENTITIES = 11;
const SSH_AGENT_IDENTITIES_ANSWER = 12;
const SSH_AGENTC_SIGN_REQUEST = 13;
const SSH_AGENT_SIGN_RESPONSE = 14;
const SSH_AGENT_RSA_SHA2_256 = 2;
const SSH_AGENT_RSA_SHA2_512 = 4;
/** OpenSSH's own limit on one agent message. */
const MAX_AGENT_MESSAGE = 256 * 1024;

/** One agent conversation answered from `keys`: what is written are requests, what is read are replies. */
function keyAgent(keys: readonly ParsedKey[]): Duplex {
  let pending: Buffer = Buffer.alloc(0);
  const agent = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, done) {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      while (pending.length >= 4) {
        const length = pending.readUInt32BE(0);
        if (length > MAX_AGENT_MESSAGE)
          return done(new Error(`SSH agent request of ${length} bytes is too large`));
        if (pending.length < 4 + length) break;
        const request = pending.subarray(4, 4 + length);
        pending = pending.subarray(4 + length);
        agent.push(sshString(answerAgentRequest(keys, request)));
      }
      done();
    },
    final(done) {
      agent.push(null);
      done();
    },
  });
  return agent;
}

function answerAgentRequest(keys: readonly ParsedKey[], request: Buffer): Buffer {
  const failure = Buffer.from([SSH_AGENT_FAILURE]);
  if (request[0] === SSH_AGENTC_REQUEST_IDENTITIES) {
    const count = Buffer.alloc(4);
    count.writeUInt32BE(keys.length);
    const listed = keys.map((k) =>
      Buffer.concat([sshString(k.getPublicSSH()), sshString(Buffer.from(k.comment))]),
    );
    return Buffer.concat([Buffer.from([SSH_AGENT_IDENTITIES_ANSWER]), count, ...listed]);
  }
  if (request[0] !== SSH_AGENTC_SIGN_REQUEST) return failure;
  const reader = new SshReader(request.subarray(1));
  const blob = reader.string();
  const data = reader.string();
  const flags = reader.uint32();
  if (blob === undefined || data === undefined || flags === undefined) return failure;
  const key = keys.find((k) => k.getPublicSSH().equals(blob));
  const signed = key && signWith(key, data, flags);
  if (signed === undefined) return failure;
  return Buffer.concat([
    Buffer.from([SSH_AGENT_SIGN_RESPONSE]),
    sshString(Buffer.concat([sshString(Buffer.from(signed.format)), sshString(signed.signature)])),
  ]);
}

const ECDSA_HASH: Readonly<Record<string, string>> = {
  "ecdsa-sha2-nistp256": "sha256",
  "ecdsa-sha2-nistp384": "sha384",
  "ecdsa-sha2-nistp521": "sha512",
};

/** The signature ssh expects for the key's type and the request's flags; undefined when the key cannot sign. */
function signWith(
  key: ParsedKey,
  data: Buffer,
  flags: number,
): { format: string; signature: Buffer } | undefined {
  const ecdsaHash = ECDSA_HASH[key.type];
  if (ecdsaHash !== undefined) {
    // ssh wants ECDSA's r and s as two mpints, not the DER sequence OpenSSL produces.
    const raw = cryptoSign(ecdsaHash, data, { key: key.getPrivatePEM(), dsaEncoding: "ieee-p1363" });
    const half = raw.length / 2;
    return {
      format: key.type,
      signature: Buffer.concat([sshMpint(raw.subarray(0, half)), sshMpint(raw.subarray(half))]),
    };
  }
  let format: string = key.type;
  let hash: string | undefined;
  if (key.type === "ssh-rsa") {
    // The flags pick SHA-2 for RSA; without them ssh-rsa means SHA-1.
    if (flags & SSH_AGENT_RSA_SHA2_512) [format, hash] = ["rsa-sha2-512", "sha512"];
    else if (flags & SSH_AGENT_RSA_SHA2_256) [format, hash] = ["rsa-sha2-256", "sha256"];
    else hash = "sha1";
  }
  const signature = hash === undefined ? key.sign(data) : key.sign(data, hash);
  return signature instanceof Error ? undefined : { format, signature };
}

/** An SSH `string`: a big-endian uint32 length, then the bytes. */
function sshString(bytes: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

/** An SSH mpint (RFC 4251): a string of the big-endian magnitude, with a zero byte before a high bit. */
function sshMpint(magnitude: Buffer): Buffer {
  let start = 0;
  while (start < magnitude.length - 1 && magnitude[start] === 0) start++;
  const body = magnitude.subarray(start);
  return sshString(body[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), body]) : body);
}

/** Reads SSH wire fields in order; undefined once a field runs past the end. */
class SshReader {
  private at = 0;
  constructor(private readonly bytes: Buffer) {}

  uint32(): number | undefined {
    if (this.at + 4 > this.bytes.length) return undefined;
    const v = this.bytes.readUInt32BE(this.at);
    this.at += 4;
    return v;
  }

  string(): Buffer | undefined {
    const length = this.uint32();
    if (length === undefined || this.at + length > this.bytes.length) return undefined;
    const v = this.bytes.subarray(this.at, this.at + length);
    this.at += length;
    return v;
  }
}
