// How errors reach the user: one message, no stack trace for user errors, Buildx's exit codes.

/** Bad flags or arguments: exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** A build that failed (a step, a Dockerfile error): exit code 1. */
export class BuildFailedError extends Error {
  override name = "BuildFailedError";
}

export function exitCodeFor(err: unknown): number {
  if (err instanceof UsageError) return 2;
  if (err instanceof Error && err.name === "AbortError") return 130;
  return 1;
}

export function formatError(err: unknown): string {
  if (err instanceof Error) {
    if (process.env.KILN_DEBUG && err.stack) return err.stack;
    return err.message;
  }
  return String(err);
}
