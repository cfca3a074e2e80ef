// The engine's bare mirror of each git remote, kept in a cache directory and shared by every build:
// created once per remote URL, then only fetched into for objects it lacks. Work on one mirror is
// serialised within the engine, as BuildKit locks its shared repository per remote.
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { digestHex, sha256Digest } from "../oci/digest.js";
import { GitCommandError, type GitRunOptions, redactCredentials, runGit } from "./git-command.js";
import { GitSourceError, isCommitSha } from "./git-source-spec.js";

type RemoteRun = Pick<GitRunOptions, "sshAuthSock" | "knownHostsFile" | "config" | "signal">;

const locks = new Map<string, Promise<unknown>>();

/** Runs `fn` once every earlier holder of `key` is done. */
async function withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const before = locks.get(key) ?? Promise.resolve();
  const mine = before.catch(() => {}).then(fn);
  const tail = mine.catch(() => {});
  locks.set(key, tail);
  try {
    return await mine;
  } finally {
    if (locks.get(key) === tail) locks.delete(key);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

export class GitMirror {
  private constructor(
    /** The bare repository. */
    readonly gitDir: string,
    readonly remote: string,
  ) {}

  /** The directory a remote's mirror lives in. */
  static pathFor(cacheDir: string, remote: string): string {
    return join(cacheDir, digestHex(sha256Digest(remote)));
  }

  /** Opens the remote's mirror (creating it if needed) and runs `fn` while holding it. */
  static async use<T>(cacheDir: string, remote: string, fn: (mirror: GitMirror) => Promise<T>): Promise<T> {
    const gitDir = GitMirror.pathFor(cacheDir, remote);
    return withLock(gitDir, async () => {
      if (!(await exists(join(gitDir, "HEAD")))) await GitMirror.create(cacheDir, gitDir, remote);
      return fn(new GitMirror(gitDir, remote));
    });
  }

  /** Initialises the bare repository aside and renames it in, so a crash leaves no half mirror. */
  private static async create(cacheDir: string, gitDir: string, remote: string): Promise<void> {
    await mkdir(cacheDir, { recursive: true });
    const temp = await mkdtemp(join(cacheDir, ".new-"));
    try {
      await runGit(["-c", "init.defaultBranch=master", "init", "--bare", "--quiet"], { gitDir: temp });
      await runGit(["remote", "add", "origin", remote], { gitDir: temp });
      await rm(gitDir, { recursive: true, force: true });
      await rename(temp, gitDir);
    } catch (e) {
      await rm(temp, { recursive: true, force: true });
      throw e;
    }
  }

  run(args: readonly string[], opts: Omit<GitRunOptions, "gitDir"> = {}): Promise<string> {
    return runGit(args, { ...opts, gitDir: this.gitDir });
  }

  async has(object: string): Promise<boolean> {
    try {
      await this.run(["cat-file", "-e", `${object}^{object}`]);
      return true;
    } catch (e) {
      if (e instanceof GitCommandError) return false;
      throw e;
    }
  }

  /**
   * Makes sure `object` (a commit, or the annotated tag object `ref` names) is in the mirror,
   * fetching from the remote only when it is not: the named ref shallowly, else the object itself,
   * else (servers that refuse fetching by id) every branch and tag in full.
   */
  async ensure(
    object: string,
    ref: string,
    run: RemoteRun,
    opts: { byCommit?: boolean } = {},
  ): Promise<void> {
    if (await this.has(object)) return;
    try {
      await this.fetchMissing(object, ref, run, opts.byCommit ?? false);
    } catch (e) {
      if (e instanceof GitCommandError)
        throw new GitSourceError(
          `failed to fetch ${ref} from ${redactCredentials(this.remote)}: ${e.message}`,
          {
            cause: e,
          },
        );
      throw e;
    }
    if (!(await this.has(object)))
      throw new GitSourceError(
        `commit ${object} (ref ${ref}) can not be fetched from ${redactCredentials(this.remote)}: it is no longer in the repository`,
      );
  }

  private async fetchMissing(object: string, ref: string, run: RemoteRun, byCommit: boolean): Promise<void> {
    await rm(join(this.gitDir, "shallow.lock"), { force: true });
    if (!isCommitSha(ref) && !byCommit) {
      await this.fetch(["--depth=1", "--no-tags", "--force", "origin", "--", `+${ref}:${ref}`], run);
      if (await this.has(object)) return;
    }
    try {
      await this.fetch(["--depth=1", "--no-tags", "origin", object], run);
    } catch (e) {
      if (!(e instanceof GitCommandError)) throw e;
      const args = ["--tags", "--force"];
      if (await exists(join(this.gitDir, "shallow"))) args.push("--unshallow");
      await this.fetch([...args, "origin", "+refs/heads/*:refs/heads/*"], run);
    }
  }

  /** Points a fresh private ref at `object` (so a local clone can fetch it by name); returns its name. */
  async pin(object: string): Promise<{ ref: string; release: () => Promise<void> }> {
    const ref = `refs/kiln/checkout/${randomBytes(8).toString("hex")}`;
    await this.run(["update-ref", ref, object]);
    return { ref, release: () => this.run(["update-ref", "-d", ref]).then(() => undefined) };
  }

  private async fetch(args: readonly string[], run: RemoteRun): Promise<void> {
    await this.run(["fetch", "--quiet", ...args], run);
  }
}
