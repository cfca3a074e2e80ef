// The builder store's lock: an flock(2) on `<store>/.lock`, so that two CLIs changing builders at
// once take turns. flock is taken by the `flock` program on a file descriptor this process opened
// and lends to it: the lock belongs to the open file description, so it stays with this process
// after the child exits and is released when the descriptor is closed — or when the process dies,
// which is why a crashed CLI never leaves a stale lock behind.
import { spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";

export interface LockOptions {
  /** How long to wait for another CLI to finish (default 20 s). */
  readonly timeoutMs?: number;
}

/** Holds the exclusive lock on `lockPath` while `fn` runs. */
export async function withFileLock<T>(
  lockPath: string,
  fn: () => Promise<T>,
  opts: LockOptions = {},
): Promise<T> {
  const fd = openSync(lockPath, "a", 0o600);
  try {
    await takeLock(fd, lockPath, opts.timeoutMs ?? 20_000);
    return await fn();
  } finally {
    // Closing the only descriptor of the open file description releases the flock.
    closeSync(fd);
  }
}

function takeLock(fd: number, lockPath: string, timeoutMs: number): Promise<void> {
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
          new Error(
            `timed out after ${seconds}s waiting for the lock on ${lockPath}: another kiln command holds it`,
          ),
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
