// Concurrent steps that never leave work running behind a failure: cleanup that follows a failed
// step must not race a sibling that is still writing into the bundle or the rootfs.

/** Runs `fn` on every item concurrently; once all have settled, throws the first failure. */
export async function settleAll<T, R>(items: readonly T[], fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = await Promise.allSettled(items.map(fn));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) throw failed.reason;
  return results.map((r) => (r as PromiseFulfilledResult<R>).value);
}

/** Awaits every promise; once all have settled, throws the first failure. */
export function allSettledOrThrow<T extends readonly unknown[]>(
  promises: readonly [...{ [K in keyof T]: Promise<T[K]> }],
): Promise<T> {
  return settleAll(promises, (p) => p) as unknown as Promise<T>;
}
