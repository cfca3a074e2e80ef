// Exclusive locks between processes: an flock(2) on a lock file, so that two CLIs changing the
// builder store, or two engines sharing a state directory's context copies, take turns. flock is
// taken by the `flock` program on a file descriptor this process opened
// and lends to it: the lock belongs to the open file description, so it stays with this process
// after the child exits and is released when the descriptor is closed — or when the process dies,
// which is why a crashed process never leaves a stale lock behind.
import { spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";

export interface LockOptions {
  /** How long to wait for the holder to finish (default 20 s). */
  readonly timeoutMs?: number;
  /** Who holds such a lock, for the timeout message (default "another kiln command"). */
  readonly holder?: string;
}

/** Takes the exclusive lock on `lockPath`; the returned function releases it. */
export async function acquireFileLock(lockPath: string, opts: LockOptions = {}): Promise<() => void> {
  const fd = openSync(lockPath, "a", 0o600);
  try {
    await takeLock(fd, lockPath, opts.timeoutMs ?? 20_000, opts.holder ?? "another kiln command");
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  let released = false;
  return () => {
    if (released) return;
    released = true;
    // Closing the only descriptor of the open file description releases the flock.
    closeSync(fd);
  };
}

/** Holds the exclusive lock on `lockPath` while `fn` runs. */
export async function withFileLock<T>(
  lockPath: string,
  fn: () => Promise<T>,
  opts: LockOptions = {},
): Promise<T> {
  const release = await acquireFileLock(lockPath, opts);
  try {
    return await fn();
  } finally {
    release();
  }
}

function takeLock(fd: number, lockPath: string, timeoutMs: number, holder: string): Promise<void> {
  const seconds = Math.max(1, Math.ceil(timeoutMs / 1000));
  return new Promise((resolve, reject) => {
    const child = spawn("flock", ["--exclusive", "--wait", String(seconds), "3"], {
      stdio: ["ignore", "ignore", "pipe", fd],
    });
    let stderr = "";
    child.stderr?.on("data", (b: Buffer) => {
      stderr += b.toString();
    });
    child.once("error", (err: NodeJS.ErrnoException) => {
      reject(
        new Error(
          err.code === "ENOENT"
            ? `cannot lock ${lockPath}: the flock program is missing (install util-linux)`
            : `cannot lock ${lockPath}: ${err.message}`,
        ),
      );
    });
    child.once("close", (code) => {
      if (code === 0) resolve();
      else if (code === 1)
        reject(
          new Error(`timed out after ${seconds}s waiting for the lock on ${lockPath}: ${holder} holds it`),
        );
      else
        reject(
          new Error(
            `cannot lock ${lockPath}: flock exited with ${code}${stderr ? `: ${stderr.trim()}` : ""}`,
          ),
        );
    });
  });
}
