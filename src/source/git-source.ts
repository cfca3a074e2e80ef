// The git source (`ADD git@…`, `ADD https://….git#ref`, git build contexts): pins the ref to a
// commit with `git ls-remote` for the cache key, and checks that commit out of the engine's bare
// mirror of the remote — only the sub-directory asked for, `.git` only with git.keepgitdir,
// submodules unless skipped, file times as BuildKit leaves them (or the commit time with
// git.mtime=commit).
import { lstat, lutimes, mkdir, mkdtemp, readdir, rename, rm, stat } from "node:fs/promises";
import { join, posix } from "node:path";
import { GitCommandError, type GitRunOptions, redactCredentials, runGit } from "./git-command.js";
import { GitMirror } from "./git-mirror.js";
import { type GitRemoteAccessOptions, openGitRemoteAccess } from "./git-remote-access.js";
import { GitSourceError, type GitSourceSpec, isCommitSha, parseGitSource } from "./git-source-spec.js";

export type { GitRemoteAccessOptions, GitSecretLookup } from "./git-remote-access.js";
export { GitSourceError, parseGitSource } from "./git-source-spec.js";

/** What a git source's ref stands for right now. */
export interface GitPin {
  /** The commit checked out (an annotated tag peeled). */
  readonly commit: string;
  /** The object the ref names: the annotated tag object, else the commit. */
  readonly object: string;
  /** The full ref that matched (`refs/heads/main`), or the commit id when one was given. */
  readonly ref: string;
  /** The cache-key material: the pin plus every option that changes the checkout. */
  readonly key: string;
}

export interface GitCheckoutOptions extends GitRemoteAccessOptions {
  /** Where the bare mirrors of remotes are kept (engine state). */
  readonly cacheDir: string;
  /** The pin the cache key was computed from; without it the ref is resolved again. */
  readonly pin?: GitPin;
  readonly signal?: AbortSignal;
}

type RemoteRun = Pick<GitRunOptions, "sshAuthSock" | "knownHostsFile" | "config" | "signal">;

/** BuildKit's cache key: `sha[.git#ref][:subdir][(skip-submodules)][(mtime=commit)]`. */
function cacheKey(spec: GitSourceSpec, sha: string, ref: string): string {
  let key = sha;
  if (spec.keepGitDir) key += `.git${ref ? `#${ref}` : ""}`;
  if (spec.subdir) key += `:${spec.subdir}`;
  if (spec.skipSubmodules) key += "(skip-submodules)";
  if (spec.mtime !== "checkout") key += `(mtime=${spec.mtime})`;
  return key;
}

function remoteFailure(spec: GitSourceSpec, what: string, e: unknown): never {
  if (e instanceof GitCommandError)
    throw new GitSourceError(`${what} ${redactCredentials(spec.remote)}: ${e.message}`, { cause: e });
  throw e;
}

async function defaultBranch(spec: GitSourceSpec, run: RemoteRun): Promise<string> {
  let out: string;
  try {
    out = await runGit(["ls-remote", "--symref", "--", spec.remote, "HEAD"], run);
  } catch (e) {
    remoteFailure(spec, "failed to find the default branch of", e);
  }
  const m = /refs\/heads\/(\S+)/.exec(out);
  if (!m) throw new GitSourceError(`could not find the default branch of ${redactCredentials(spec.remote)}`);
  return m[1]!;
}

/** Resolves the ref with ls-remote as BuildKit does: the exact ref, then a branch, then a tag. */
async function lsRemotePin(
  spec: GitSourceSpec,
  run: RemoteRun,
): Promise<{ sha: string; ref: string; peeled?: string }> {
  const ref = spec.ref || (await defaultBranch(spec, run));
  let out: string;
  try {
    out = await runGit(["ls-remote", "--", spec.remote, ref, `${ref}^{}`], run);
  } catch (e) {
    remoteFailure(spec, "failed to list refs of", e);
  }
  const bare = ref.replace(/^refs\//, "");
  const partialRef = `refs/${bare}`;
  const headRef = `refs/heads/${ref.replace(/^refs\/heads\//, "")}`;
  const tagRef = `refs/tags/${ref.replace(/^refs\/tags\//, "")}`;
  let sha = "";
  let usedRef = "";
  let headSha = "";
  let tagSha = "";
  let peeledTagSha = "";
  for (const line of out.split("\n")) {
    const [lineSha, lineRef] = line.split("\t");
    if (!lineSha || !lineRef) continue;
    if (lineRef === headRef) headSha = lineSha;
    else if (lineRef === tagRef) tagSha = lineSha;
    else if (lineRef === `${tagRef}^{}`) peeledTagSha = lineSha;
    else if (lineRef === partialRef) {
      sha = lineSha;
      usedRef = lineRef;
    }
  }
  // git checkout prefers a branch when a name is both.
  if (!sha && headSha) {
    sha = headSha;
    usedRef = headRef;
  }
  if (sha) peeledTagSha = "";
  if (!sha && tagSha) {
    sha = tagSha;
    usedRef = tagRef;
  }
  if (!sha)
    throw new GitSourceError(
      `repository ${redactCredentials(spec.remote)} does not contain ref ${ref}: check the branch, tag or commit named after "#" in the git URL`,
    );
  if (!isCommitSha(sha)) throw new GitSourceError(`invalid commit sha ${JSON.stringify(sha)} for ref ${ref}`);
  return { sha, ref: usedRef, peeled: peeledTagSha || undefined };
}

function checkChecksum(spec: GitSourceSpec, candidates: readonly string[]): void {
  if (!spec.checksum) return;
  if (candidates.some((c) => c.startsWith(spec.checksum))) return;
  throw new GitSourceError(
    `git source ${redactCredentials(spec.remote)}#${spec.ref || "HEAD"}: expected checksum to match ${spec.checksum}, got ${candidates.join(" or ")}`,
  );
}

async function pinSpec(spec: GitSourceSpec, run: RemoteRun): Promise<GitPin> {
  if (isCommitSha(spec.ref)) {
    checkChecksum(spec, [spec.ref]);
    return { commit: spec.ref, object: spec.ref, ref: spec.ref, key: cacheKey(spec, spec.ref, spec.ref) };
  }
  const { sha, ref, peeled } = await lsRemotePin(spec, run);
  checkChecksum(spec, peeled ? [sha, peeled] : [sha]);
  // Without .git the result is the same for a tag and its commit, so both share a key.
  const keySha = peeled && !spec.keepGitDir ? peeled : sha;
  return { commit: peeled ?? sha, object: sha, ref, key: cacheKey(spec, keySha, ref) };
}

/** Pins a git source's ref to a commit (a full commit id is taken as is, without asking the remote). */
export async function resolveGitSource(
  identifier: string,
  attrs: Readonly<Record<string, string>>,
  access: GitRemoteAccessOptions & { signal?: AbortSignal } = {},
): Promise<GitPin> {
  const spec = parseGitSource(identifier, attrs);
  const remote = await openGitRemoteAccess(spec, access);
  try {
    return await pinSpec(spec, { ...remote.run, signal: access.signal });
  } finally {
    await remote.close();
  }
}

/** The cache-key material of a git source: the pinned commit plus subdir and keep-git-dir. */
export async function resolveGitKey(
  identifier: string,
  attrs: Readonly<Record<string, string>>,
  access: GitRemoteAccessOptions & { signal?: AbortSignal } = {},
): Promise<string> {
  return (await resolveGitSource(identifier, attrs, access)).key;
}

/** Checks `pin` out of the mirror into `dir` without `.git` (the mirror serves as git dir). */
async function checkoutFiles(
  mirror: GitMirror,
  spec: GitSourceSpec,
  pin: GitPin,
  dir: string,
  indexDir: string,
) {
  // A private index keeps the shared mirror's own index untouched.
  const env = { GIT_INDEX_FILE: join(indexDir, "index") };
  try {
    await mirror.run(["checkout", "--no-overlay", "--quiet", pin.commit, "--", "."], { workTree: dir, env });
  } catch (e) {
    remoteFailure(spec, `failed to check out ${pin.commit} of`, e);
  }
  return { gitDir: mirror.gitDir, env };
}

/** Clones `pin` from the mirror into `dir` with its own `.git`, HEAD detached at the commit. */
async function checkoutWithGitDir(
  mirror: GitMirror,
  spec: GitSourceSpec,
  pin: GitPin,
  dir: string,
  run: RemoteRun,
) {
  const gitDir = join(dir, ".git");
  const local = (args: readonly string[]) => runGit(args, { gitDir, workTree: dir, signal: run.signal });
  await local(["-c", "init.defaultBranch=master", "init", "--quiet"]);
  // file:// rather than a path: no local-clone shortcuts that could link other host files in.
  await local(["remote", "add", "origin", `file://${mirror.gitDir}`]);
  const pinned = await mirror.pin(pin.object);
  try {
    const dest = isCommitSha(pin.ref) ? "" : `:${pin.ref}`;
    await local([
      "fetch",
      "--quiet",
      "--no-tags",
      "-u",
      "--depth=1",
      "--",
      "origin",
      `+${pinned.ref}${dest}`,
    ]);
  } finally {
    await pinned.release();
  }
  await local(["checkout", "--quiet", "--detach", pin.commit]);
  await local(["remote", "set-url", "origin", redactCredentials(spec.remote)]);
  await local(["reflog", "expire", "--all", "--expire=now"]);
  await rm(join(gitDir, "FETCH_HEAD"), { force: true });
  return { gitDir, env: {} };
}

/** Every path of the subdir must be a real directory: a symlink could point out of the checkout. */
async function checkSubdir(root: string, subdir: string, spec: GitSourceSpec, pin: GitPin): Promise<void> {
  let p = root;
  for (const part of subdir.split("/").filter((s) => s !== "" && s !== ".")) {
    p = join(p, part);
    let st: Awaited<ReturnType<typeof lstat>>;
    try {
      st = await lstat(p);
    } catch {
      throw new GitSourceError(
        `subdir ${JSON.stringify(subdir)} does not exist in ${redactCredentials(spec.remote)} at ${spec.ref || "the default branch"} (commit ${pin.commit}): check the path after ":" in the git URL's fragment`,
      );
    }
    if (!st.isDirectory())
      throw new GitSourceError(
        `git subdir ${JSON.stringify(subdir)} contains non-directory ${JSON.stringify(part)}`,
      );
  }
}

/** Removes submodules' `.git` files: they point into the engine's mirror, meaningless in a result. */
async function removeGitLinks(dir: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.name === ".git" && !entry.isDirectory()) await rm(p, { force: true });
    else if (entry.isDirectory()) await removeGitLinks(p);
  }
}

/** Sets every file's times to `t`, children before their directory so nothing bumps it again. */
async function setTimes(dir: string, t: Date): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) await setTimes(p, t);
    else await lutimes(p, t, t);
  }
  await lutimes(dir, t, t);
}

/**
 * Checks the git source out into `destDir` (created if missing, expected empty), fetching into the
 * remote's mirror under `opts.cacheDir` only what it lacks. Returns the commit checked out.
 */
export async function checkoutGitToDir(
  identifier: string,
  attrs: Readonly<Record<string, string>>,
  destDir: string,
  opts: GitCheckoutOptions,
): Promise<{ commit: string }> {
  const spec = parseGitSource(identifier, attrs);
  const remote = await openGitRemoteAccess(spec, opts);
  const run: RemoteRun = { ...remote.run, signal: opts.signal };
  try {
    const pin = opts.pin ?? (await pinSpec(spec, run));
    await mkdir(destDir, { recursive: true });
    await GitMirror.use(opts.cacheDir, spec.remote, async (mirror) => {
      const byCommit = spec.fetchByCommit && spec.checksum !== "";
      await mirror.ensure(pin.object, pin.ref, run, { byCommit });
      const subdir = posix.join("/", spec.subdir).slice(1);
      const indexDir = await mkdtemp(join(opts.cacheDir, ".index-"));
      // With a subdir, the whole tree goes aside within destDir (renames stay on one filesystem).
      const target = subdir === "" ? destDir : await mkdtemp(join(destDir, ".checkout-"));
      try {
        const keepGitDir = spec.keepGitDir && subdir === "";
        const repo = keepGitDir
          ? await checkoutWithGitDir(mirror, spec, pin, target, run)
          : await checkoutFiles(mirror, spec, pin, target, indexDir);
        if (!spec.skipSubmodules && (await stat(join(target, ".gitmodules")).catch(() => undefined))) {
          try {
            await runGit(["submodule", "update", "--init", "--recursive", "--depth=1", "--quiet"], {
              ...run,
              gitDir: repo.gitDir,
              workTree: target,
              env: repo.env,
            });
          } catch (e) {
            remoteFailure(spec, "failed to update submodules for", e);
          }
          if (!keepGitDir) await removeGitLinks(target);
        }
        if (subdir !== "") {
          await checkSubdir(target, subdir, spec, pin);
          for (const name of await readdir(join(target, subdir)))
            await rename(join(target, subdir, name), join(destDir, name));
        }
      } finally {
        await rm(indexDir, { recursive: true, force: true });
        if (target !== destDir) await rm(target, { recursive: true, force: true });
      }
      if (spec.mtime === "commit") {
        const ct = (await mirror.run(["log", "-1", "--format=%ct", `${pin.commit}^{commit}`])).trim();
        await setTimes(destDir, new Date(Number.parseInt(ct, 10) * 1000));
      }
    });
    return { commit: pin.commit };
  } finally {
    await remote.close();
  }
}
