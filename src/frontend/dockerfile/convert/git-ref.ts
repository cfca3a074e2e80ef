// Which ADD sources are git repositories, and what they ask for (BuildKit's dfgitutil.ParseGitRef):
// `https://host/repo.git#ref:subdir`, `git@host:repo.git`, `git://…`, `ssh://…`, with query
// options `ref`, `tag`, `branch`, `subdir`, `checksum`/`commit`, `keep-git-dir`, `submodules`,
// `mtime`, `fetch-by-commit`.
import { fromUrl, type GitUrl, GitUrlError, parseGitUrl } from "../../../llb/git-url.js";

export interface GitRef {
  readonly remote: string;
  readonly shortName: string;
  readonly ref: string;
  readonly checksum: string;
  readonly subdir: string;
  readonly indistinguishableFromLocal: boolean;
  readonly unencryptedTcp: boolean;
  readonly keepGitDir?: boolean;
  readonly submodules?: boolean;
  readonly mtime?: string;
  readonly fetchByCommit: boolean;
}

/** `{ ref }` when `src` is a git ref; `{ isGit: true, error }` when it looks like one but is bad. */
export type GitRefResult =
  | { readonly ok: true; readonly ref: GitRef }
  | { readonly ok: false; readonly isGit: boolean; readonly error?: string };

function parseBool(s: string): boolean | undefined {
  if (["1", "t", "T", "TRUE", "true", "True"].includes(s)) return true;
  if (["0", "f", "F", "FALSE", "false", "False"].includes(s)) return false;
  return undefined;
}

export function parseGitRef(src: string): GitRefResult {
  if (src.startsWith("./") || src.startsWith("../")) return { ok: false, isGit: false };
  let remote: GitUrl;
  let indistinguishable = false;
  let unencrypted = false;
  try {
    if (src.startsWith("github.com/")) {
      indistinguishable = true;
      remote = fromUrl(`https://${src}`, "https");
    } else {
      remote = parseGitUrl(src);
      if (remote.scheme === "http" || remote.scheme === "git") unencrypted = true;
      if ((remote.scheme === "http" || remote.scheme === "https") && !remote.path.endsWith(".git"))
        return { ok: false, isGit: false };
    }
  } catch (e) {
    if (e instanceof GitUrlError) return { ok: false, isGit: false, error: e.message };
    throw e;
  }
  let remoteStr = remote.remote;
  if (indistinguishable) remoteStr = remoteStr.slice(remoteStr.indexOf("://") + 3);
  const parts = remoteStr.split("/");
  const shortName = parts[parts.length - 1]!.replace(/\.git$/, "");
  const r = {
    remote: remoteStr,
    shortName,
    ref: remote.ref ?? "",
    checksum: "",
    subdir: remote.subdir ?? "",
    indistinguishableFromLocal: indistinguishable,
    unencryptedTcp: unencrypted,
    keepGitDir: undefined as boolean | undefined,
    submodules: undefined as boolean | undefined,
    mtime: undefined as string | undefined,
    fetchByCommit: false,
  };
  const fail = (error: string): GitRefResult => ({ ok: false, isGit: true, error });
  const query = remote.query ?? [];
  const seen = new Map<string, number>();
  for (const [k] of query) seen.set(k, (seen.get(k) ?? 0) + 1);
  let tag = "";
  let branch = "";
  const done = new Set<string>();
  for (const [k, v] of query) {
    if (done.has(k)) continue;
    done.add(k);
    if ((seen.get(k) ?? 0) > 1) return fail(`query ${JSON.stringify(k)} has multiple values`);
    const flagLike = k === "submodules" || k === "keep-git-dir" || k === "fetch-by-commit";
    if (v === "" && !flagLike) return fail(`query ${JSON.stringify(k)} has no value`);
    switch (k) {
      case "ref":
        if (r.ref !== "" && r.ref !== v)
          return fail(`ref conflicts: ${JSON.stringify(r.ref)} vs ${JSON.stringify(v)}`);
        r.ref = v;
        break;
      case "tag":
        tag = v;
        break;
      case "branch":
        branch = v;
        break;
      case "subdir":
        if (r.subdir !== "" && r.subdir !== v)
          return fail(`subdir conflicts: ${JSON.stringify(r.subdir)} vs ${JSON.stringify(v)}`);
        r.subdir = v;
        break;
      case "checksum":
      case "commit":
        r.checksum = v;
        break;
      case "keep-git-dir":
      case "submodules":
      case "fetch-by-commit": {
        const b = v === "" ? true : parseBool(v);
        if (b === undefined) return fail(`invalid ${k} value: ${JSON.stringify(v)}`);
        if (k === "keep-git-dir") r.keepGitDir = b;
        else if (k === "submodules") r.submodules = b;
        else r.fetchByCommit = b;
        break;
      }
      case "mtime":
        if (v !== "checkout" && v !== "commit")
          return fail(`invalid mtime value: ${JSON.stringify(v)} (must be "checkout" or "commit")`);
        r.mtime = v;
        break;
      default:
        return fail(`unexpected query ${JSON.stringify(k)}`);
    }
  }
  if (tag !== "") {
    const t = tag.startsWith("refs/tags/") ? tag : `refs/tags/${tag}`;
    if (r.ref !== "" && r.ref !== t)
      return fail(`ref conflicts: ${JSON.stringify(r.ref)} vs ${JSON.stringify(t)}`);
    r.ref = t;
  }
  if (branch !== "") {
    if (tag !== "") return fail("branch conflicts with tag");
    const b = branch.startsWith("refs/heads/") ? branch : `refs/heads/${branch}`;
    if (r.ref !== "" && r.ref !== b)
      return fail(`ref conflicts: ${JSON.stringify(r.ref)} vs ${JSON.stringify(b)}`);
    r.ref = b;
  }
  return { ok: true, ref: r };
}

/** An http(s) URL that is not a git repository (ADD downloads it). */
export function isHttpSource(src: string): boolean {
  if (!src.startsWith("http://") && !src.startsWith("https://")) return false;
  return !isGitSource(src);
}

export function isGitSource(src: string): boolean {
  const r = parseGitRef(src);
  return r.ok;
}
