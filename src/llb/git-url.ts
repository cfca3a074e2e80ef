// Git remote URLs as BuildKit reads them (util/gitutil ParseURL): `https://`, `http://`, `ssh://`
// and `git://` URLs, and scp-style `user@host:path`, each with an optional `#ref[:subdir]`
// fragment and query options. The LLB git source and the Dockerfile's ADD both use this.
import { posix } from "node:path";

export type GitScheme = "http" | "https" | "ssh" | "git";

export interface GitUrl {
  readonly scheme: GitScheme;
  readonly host: string;
  readonly path: string;
  readonly user?: string;
  /** Query parameters, in order (`?ref=…&subdir=…`); undefined when there are none. */
  readonly query?: readonly (readonly [string, string])[];
  /** From the fragment: `#ref[:subdir]`. */
  readonly ref?: string;
  readonly subdir?: string;
  /** The URL to hand to git: without fragment and query. */
  readonly remote: string;
}

export class GitUrlError extends Error {
  constructor(
    message: string,
    readonly code: "unknown-protocol" | "invalid-protocol" | "invalid",
  ) {
    super(message);
    this.name = "GitUrlError";
  }
}

const PROTO_RE = /^[a-zA-Z0-9]+:\/\//;
const SUPPORTED = new Set(["http", "https", "ssh", "git"]);
const SCP_RE = /^([a-zA-Z0-9-_]+)@([a-zA-Z0-9-.]+):(.*?)(?:\?(.*?))?(?:#(.*))?$/;

function parseFragment(fragment: string): { ref?: string; subdir?: string } {
  if (fragment === "") return {};
  const colon = fragment.indexOf(":");
  const ref = colon < 0 ? fragment : fragment.slice(0, colon);
  const rawSub = colon < 0 ? "" : fragment.slice(colon + 1);
  const subdir = posix.join("/", rawSub).replace(/^\//, "");
  return { ref, subdir };
}

function parseQuery(q: string): (readonly [string, string])[] | undefined {
  if (q === "") return undefined;
  const out: [string, string][] = [];
  for (const part of q.split("&")) {
    if (part === "") continue;
    const eq = part.indexOf("=");
    const k = eq < 0 ? part : part.slice(0, eq);
    const v = eq < 0 ? "" : part.slice(eq + 1);
    try {
      out.push([decodeURIComponent(k.replaceAll("+", " ")), decodeURIComponent(v.replaceAll("+", " "))]);
    } catch {
      throw new GitUrlError(`invalid query in ${JSON.stringify(q)}`, "invalid");
    }
  }
  return out.length ? out : undefined;
}

/** Whether the string names a git transport (a supported URL scheme or scp-style ssh). */
export function isGitTransport(remote: string): boolean {
  const m = PROTO_RE.exec(remote);
  if (m) return SUPPORTED.has(m[0].slice(0, -3).toLowerCase());
  return SCP_RE.test(remote);
}

/** Parses a BuildKit-style git URL. Throws GitUrlError. */
export function parseGitUrl(remote: string): GitUrl {
  const m = PROTO_RE.exec(remote);
  if (m) {
    const proto = m[0].slice(0, -3).toLowerCase();
    if (!SUPPORTED.has(proto)) throw new GitUrlError(`invalid protocol: ${proto}`, "invalid-protocol");
    return fromUrl(remote, proto as GitScheme);
  }
  const scp = SCP_RE.exec(remote);
  if (scp) {
    const [, user, host, path, query, fragment] = scp;
    return {
      scheme: "ssh",
      user,
      host: host!,
      path: path!,
      query: parseQuery(query ?? ""),
      ...parseFragment(fragment ?? ""),
      remote: `${user}@${host}:${path}`,
    };
  }
  throw new GitUrlError("unknown protocol", "unknown-protocol");
}

/** Parses a URL with a scheme (Go's url.Parse as far as git remotes need it). */
export function fromUrl(raw: string, scheme: GitScheme): GitUrl {
  let rest = raw.slice(raw.indexOf("://") + 3);
  let fragment = "";
  const hash = rest.indexOf("#");
  if (hash >= 0) {
    fragment = rest.slice(hash + 1);
    rest = rest.slice(0, hash);
  }
  let query = "";
  const qm = rest.indexOf("?");
  if (qm >= 0) {
    query = rest.slice(qm + 1);
    rest = rest.slice(0, qm);
  }
  const slash = rest.indexOf("/");
  let authority = slash < 0 ? rest : rest.slice(0, slash);
  let path = slash < 0 ? "" : rest.slice(slash);
  let user: string | undefined;
  const at = authority.lastIndexOf("@");
  if (at >= 0) {
    user = authority.slice(0, at);
    authority = authority.slice(at + 1);
  }
  if (/[\s]/.test(authority)) throw new GitUrlError(`invalid host in ${JSON.stringify(raw)}`, "invalid");
  try {
    path = decodeURIComponent(path);
  } catch {
    throw new GitUrlError(`invalid URL escape in ${JSON.stringify(raw)}`, "invalid");
  }
  let decodedFragment = fragment;
  try {
    decodedFragment = decodeURIComponent(fragment);
  } catch {
    // keep as written
  }
  const remote = `${raw.slice(0, raw.indexOf("://") + 3)}${user !== undefined ? `${user}@` : ""}${authority}${slash < 0 ? "" : rest.slice(slash)}`;
  return {
    scheme,
    host: authority,
    path,
    user,
    query: parseQuery(query),
    ...parseFragment(decodedFragment),
    remote,
  };
}
