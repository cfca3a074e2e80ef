// `push-by-digest=true` on an image output (BuildKit's attribute): the image goes to each named
// repository under its digest only, with no tag. Multi-node builds push each node's platforms this
// way, and the client then writes the index that joins them and tags it.
import type { ContentStore } from "../content/types.js";
import { parseImageRef } from "../oci/image-ref.js";
import type { Descriptor } from "../oci/spec.js";
import type { ImagePusher } from "./export.js";

/** Whether an image output's attributes ask for a push by digest (Go's ParseBool; empty is true). */
export function wantsPushByDigest(attrs: Readonly<Record<string, string>>): boolean {
  const v = attrs["push-by-digest"];
  return v !== undefined && /^(|1|t|T|true|TRUE|True)$/.test(v);
}

/** The distinct `registry/repository` of each name, tags and digests dropped, in order. */
export function repositoriesOf(names: readonly string[]): string[] {
  const out: string[] = [];
  for (const name of names) {
    const ref = parseImageRef(name);
    const repo = `${ref.registry}/${ref.repository}`;
    if (!out.includes(repo)) out.push(repo);
  }
  return out;
}

/**
 * Pushes `root` and everything below it to each repository of `names` by digest: a reference of
 * the form `repo@digest` carries no tag, so the pusher puts the root under its digest alone.
 * Returns the repositories pushed to.
 */
export async function pushByDigest(
  push: ImagePusher,
  names: readonly string[],
  root: Descriptor,
  store: ContentStore,
  signal: AbortSignal,
): Promise<string[]> {
  const repos = repositoriesOf(names);
  for (const repo of repos) await push(`${repo}@${root.digest}`, root, store, signal);
  return repos;
}
