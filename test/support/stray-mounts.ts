// What counts as left behind among the mounts under an engine's state directory.

/**
 * `mounts` without the one tmpfs a running executor keeps its step bundles on (at `bundlesDir`):
 * that one belongs to the live engine, while a second one there would be a leftover.
 */
export function strayMounts(mounts: readonly string[], bundlesDir: string): string[] {
  const out = [...mounts];
  const own = out.indexOf(bundlesDir);
  if (own >= 0) out.splice(own, 1);
  return out;
}
