// What a git source op asks for, read from its identifier (`git://HOST/PATH#REF:SUBDIR`) and attrs
// as BuildKit's GitIdentifier reads them: `git.fullurl` holds the real remote (https://, ssh://,
// scp-style user@host:path); the identifier alone implies https.

import { isGitTransport, parseGitUrl } from "../llb/git-url.js";
import { GitAttr } from "../llb/source-attrs.js";

export interface GitSourceSpec {
  /** The URL handed to git. */
  readonly remote: string;
  /** Branch, tag, full ref or commit; empty means the remote's default branch. */
  readonly ref: string;
  /** The sub-directory of the repository the result holds; empty for all of it. */
  readonly subdir: string;
  readonly keepGitDir: boolean;
  /** A commit (prefix) the resolved ref must match. */
  readonly checksum: string;
  readonly skipSubmodules: boolean;
  /** `checkout` (files keep checkout times) or `commit` (all set to the commit time). */
  readonly mtime: "checkout" | "commit";
  readonly fetchByCommit: boolean;
  readonly authHeaderSecret: string;
  readonly authTokenSecret: string;
  readonly knownSshHosts: string;
  readonly mountSshSock: string;
}

/** A git source that cannot be resolved or checked out; the message names the remote and ref. */
export class GitSourceError extends Error {
  override name = "GitSourceError";
}

const COMMIT_RE = /^([0-9a-f]{40}|[0-9a-f]{64})$/;

/** A full commit id (sha1 or sha256 object format), which needs no lookup. */
export function isCommitSha(s: string): boolean {
  return COMMIT_RE.test(s);
}

function withScheme(url: string): string {
  return isGitTransport(url) ? url : `https://${url}`;
}

export function parseGitSource(identifier: string, attrs: Readonly<Record<string, string>>): GitSourceSpec {
  if (!identifier.startsWith("git://")) throw new Error(`not a git source: ${identifier}`);
  const parsed = parseGitUrl(withScheme(identifier.slice("git://".length)));
  const full = attrs[GitAttr.fullUrl];
  const remote = full ? parseGitUrl(withScheme(full)).remote : parsed.remote;
  const ref = parsed.ref ?? "";
  if (ref.startsWith("-")) throw new GitSourceError(`invalid git ref ${JSON.stringify(ref)} for ${remote}`);
  const mtime = attrs[GitAttr.mtime] || "checkout";
  if (mtime !== "checkout" && mtime !== "commit")
    throw new GitSourceError(
      `invalid git.mtime ${JSON.stringify(mtime)} for ${remote}: must be "checkout" or "commit"`,
    );
  const checksum = attrs[GitAttr.checksum] ?? "";
  if (checksum !== "" && !/^[a-fA-F0-9]+$/.test(checksum))
    throw new GitSourceError(
      `invalid checksum ${checksum} for Git URL ${remote}: expected a hex commit hash`,
    );
  return {
    remote,
    ref,
    subdir: parsed.subdir ?? "",
    keepGitDir: attrs[GitAttr.keepGitDir] === "true",
    checksum: checksum.toLowerCase(),
    skipSubmodules: attrs[GitAttr.skipSubmodules] === "true",
    mtime,
    fetchByCommit: attrs[GitAttr.fetchByCommit] === "true",
    authHeaderSecret: attrs[GitAttr.authHeaderSecret] ?? "",
    authTokenSecret: attrs[GitAttr.authTokenSecret] ?? "",
    knownSshHosts: attrs[GitAttr.knownSshHosts] ?? "",
    mountSshSock: attrs[GitAttr.mountSshSock] ?? "",
  };
}
