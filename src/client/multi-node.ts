// A build whose platforms fall to several nodes of a builder: each node builds its platforms as one
// sub-request (the same request, `platforms` narrowed) on its own engine, all at once, with their
// progress in one renderer; then the client joins the results. Pushed images: every node pushes its
// manifests by digest and the client pushes the index over them under the tags. OCI and Docker
// archives: every node writes its archive to a temp file and the client writes one archive with the
// joined index. Root filesystems: a folder per platform, in one directory or one tar. A node that
// fails fails the build, naming the node and its platforms, and cancels the others.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileContentStore } from "../content/store.js";
import type { BuildEngine, BuildOutcome } from "../engine/types.js";
import { sha256Digest } from "../oci/digest.js";
import { formatPlatform, type Platform, platformDirName } from "../oci/platform.js";
import type { Descriptor } from "../oci/spec.js";
import type { BuildSession } from "../session/types.js";
import type { ProgressSink } from "../solver/progress.js";
import type { BuildRequest, OutputSpec } from "./build-request.js";
import {
  descriptorFrom,
  importImageArchive,
  inRequestedOrder,
  joinedIndex,
  type NodeImage,
  type PlatformManifest,
  platformManifests,
  pushJoinedIndex,
  type RootfsPart,
  writeJoinedArchive,
  writeJoinedRootfsTar,
} from "./multi-node-join.js";
import { NodeProgressMerger } from "./multi-node-progress.js";

/** A node of the selected builder, opened for this build, with the platforms it builds. */
export interface PlacedNode {
  readonly name: string;
  /** Empty: the node's default platform (a build that asked for none). */
  readonly platforms: readonly Platform[];
  readonly engine: BuildEngine;
}

/** Where a build runs: the builder and the nodes its platforms were given to. */
export interface NodePlacement {
  readonly builder: string;
  readonly nodes: readonly PlacedNode[];
  /** What the user should know about the placement (a platform no node declares or runs). */
  readonly warnings?: readonly string[];
}

export interface MultiNodeBuildOptions {
  readonly onProgress: ProgressSink;
  readonly signal: AbortSignal;
  readonly stdout: NodeJS.WritableStream;
  readonly env: NodeJS.ProcessEnv;
  /** A session for one node's sub-request (its outputs are the ones that node writes). */
  readonly session: (req: BuildRequest) => BuildSession;
}

/** A failed node: the message says which node and which platforms, then what failed. */
export class NodeBuildError extends Error {
  override name = "NodeBuildError";

  constructor(
    readonly node: string,
    readonly platforms: readonly Platform[],
    failure: unknown,
  ) {
    // A failed step's report spans lines; its last line is the one the CLI prints after ERROR:.
    const lines = (failure instanceof Error ? failure.message : String(failure)).split("\n");
    const last = lines.pop() ?? "";
    const what = platforms.map(formatPlatform).join(", ") || "the default platform";
    super([...lines, `building ${what} on node ${node}: ${last}`].join("\n"), { cause: failure });
  }
}

/** The distinct platforms of a request, in order. */
export function distinctPlatforms(ps: readonly Platform[]): Platform[] {
  const seen = new Set<string>();
  return ps.filter((p) => {
    const k = formatPlatform(p);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/**
 * `--load` (a Docker output without dest) of more than one platform: the Docker daemon's classic
 * image store holds one image per name, not an index, so the load is refused before building.
 */
export function refuseMultiPlatformLoad(req: BuildRequest): void {
  const platforms = distinctPlatforms(req.platforms);
  if (platforms.length < 2) return;
  if (!req.outputs.some((o) => o.type === "docker" && !o.dest)) return;
  throw new Error(
    `--load cannot take a multi-platform build (${platforms.map(formatPlatform).join(", ")}): the Docker daemon's image store holds one image per name, not an image index. ` +
      "Build one platform with --platform to load it, push the index with --push, or write it with --output type=oci,dest=FILE",
  );
}

type ImageOutput = Extract<OutputSpec, { type: "image" }>;
type ArchiveOutput = Extract<OutputSpec, { type: "oci" | "docker" }>;
type RootfsOutput = Extract<OutputSpec, { type: "local" | "tar" }>;

/** How one output of the request is split over the nodes and joined again. */
type OutputJoin =
  | { readonly kind: "push"; readonly output: ImageOutput }
  | { readonly kind: "archive"; readonly output: ArchiveOutput; readonly files: readonly string[] }
  | { readonly kind: "rootfs-tar"; readonly output: RootfsOutput; readonly parts: readonly RootfsPart[] }
  | { readonly kind: "none" };

interface SplitPlan {
  /** Per node: the outputs its sub-request has. */
  readonly outputs: readonly OutputSpec[][];
  readonly joins: readonly OutputJoin[];
}

/** Splits the request's outputs over the nodes; temp files go under `tmp`. */
function splitOutputs(req: BuildRequest, nodes: readonly PlacedNode[], tmp: string): SplitPlan {
  const perNode: OutputSpec[][] = nodes.map(() => []);
  // The pushed image goes last: a node reports the metadata of its last image output.
  const pushed: OutputSpec[][] = nodes.map(() => []);
  const joins: OutputJoin[] = [];
  const pushing = req.outputs.filter((o) => o.type === "image" && o.push);
  if (pushing.length > 1) {
    throw new Error(
      "a build across several nodes pushes one image output: name every tag in one output (-t A -t B, or --output type=image,name=A,B,push=true)",
    );
  }
  req.outputs.forEach((output, k) => {
    switch (output.type) {
      case "image": {
        if (!output.push) {
          // Each node keeps its platforms' image; there is nowhere the index could live.
          for (const i of nodes.keys()) perNode[i]!.push(output);
          joins.push({ kind: "none" });
          return;
        }
        if (output.names.length === 0)
          throw new Error(
            "push requested but the image has no name: use -t NAME or --output type=image,name=NAME",
          );
        const byDigest: ImageOutput = { ...output, attrs: { ...output.attrs, "push-by-digest": "true" } };
        for (const i of nodes.keys()) pushed[i]!.push(byDigest);
        joins.push({ kind: "push", output });
        return;
      }
      case "oci":
      case "docker": {
        if (output.type === "docker" && !output.dest) {
          throw new Error(
            "--load cannot take a build across several nodes: load one platform at a time with --platform",
          );
        }
        const files = nodes.map((_, i) => join(tmp, `node${i}-output${k}.tar`));
        for (const i of nodes.keys()) perNode[i]!.push({ ...output, dest: files[i]!, tar: true });
        joins.push({ kind: "archive", output, files });
        return;
      }
      case "local":
      case "tar": {
        const split = output.attrs["platform-split"] !== "false";
        // A node that builds one platform writes it unsplit: its folder is named here instead.
        const folder = (n: PlacedNode) =>
          split && n.platforms.length === 1 ? platformDirName(n.platforms[0]!) : "";
        if (output.type === "local") {
          nodes.forEach((n, i) => {
            const f = folder(n);
            perNode[i]!.push({ ...output, dest: f ? join(output.dest, f) : output.dest });
          });
          joins.push({ kind: "none" });
          return;
        }
        const parts = nodes.map((n, i) => ({
          file: join(tmp, `node${i}-output${k}.tar`),
          prefix: folder(n) ? `${folder(n)}/` : "",
        }));
        for (const i of nodes.keys()) perNode[i]!.push({ ...output, dest: parts[i]!.file });
        joins.push({ kind: "rootfs-tar", output, parts });
        return;
      }
    }
  });
  return { outputs: perNode.map((o, i) => [...o, ...pushed[i]!]), joins };
}

/** Runs every node's sub-request at once; the first node to fail cancels the others. */
async function buildOnNodes(
  req: BuildRequest,
  nodes: readonly PlacedNode[],
  plan: SplitPlan,
  opts: MultiNodeBuildOptions,
): Promise<BuildOutcome[]> {
  const ac = new AbortController();
  const onAbort = () => ac.abort(opts.signal.reason);
  if (opts.signal.aborted) onAbort();
  else opts.signal.addEventListener("abort", onAbort, { once: true });
  const progress = new NodeProgressMerger(opts.onProgress);
  let failure: NodeBuildError | undefined;
  try {
    const settled = await Promise.allSettled(
      nodes.map(async (node, i) => {
        const sub: BuildRequest = { ...req, platforms: node.platforms, outputs: plan.outputs[i]! };
        const what = node.platforms.map(formatPlatform).join(", ") || "the default platform";
        // Steps name their platform, not their node: this one says which node builds which.
        const shown = clientStep(opts.onProgress, `[node ${node.name}] building ${what}`);
        try {
          const outcome = await node.engine.build(sub, opts.session(sub), {
            onProgress: progress.forNode(node.name, node.platforms),
            signal: ac.signal,
          });
          shown.done();
          return outcome;
        } catch (err) {
          // Later failures are (mostly) the cancellation this one causes: the first is the cause.
          if (!failure && !ac.signal.aborted) {
            failure = new NodeBuildError(node.name, node.platforms, err);
            ac.abort(failure);
          }
          // The failed step's report is shown once, as the build's error; here only its gist.
          const gist =
            failure && failure.node !== node.name
              ? `cancelled: node ${failure.node} failed`
              : ((err instanceof Error ? err.message : String(err)).split("\n").at(-1) ?? "");
          shown.done(new Error(gist));
          throw err;
        }
      }),
    );
    if (opts.signal.aborted) throw opts.signal.reason ?? new Error("build cancelled");
    if (failure) throw failure;
    return settled.map((s, i) => {
      if (s.status === "fulfilled") return s.value;
      throw new NodeBuildError(nodes[i]!.name, nodes[i]!.platforms, s.reason);
    });
  } finally {
    opts.signal.removeEventListener("abort", onAbort);
  }
}

/** A client-side step in the progress display (joining runs on no node). */
function clientStep(sink: ProgressSink, name: string): { done(error?: unknown): void } {
  const vertex = sha256Digest(`kiln-multi-node-join\0${name}\0${Date.now()}`);
  const started = Date.now();
  sink({ type: "vertex", vertex, name, inputs: [], started });
  return {
    done(error?: unknown) {
      sink({
        type: "vertex",
        vertex,
        name,
        inputs: [],
        started,
        completed: Date.now(),
        ...(error ? { error: (error as Error).message ?? String(error) } : {}),
      });
    },
  };
}

async function step<T>(sink: ProgressSink, name: string, fn: () => Promise<T>): Promise<T> {
  const s = clientStep(sink, name);
  try {
    const out = await fn();
    s.done();
    return out;
  } catch (err) {
    s.done(err);
    throw err;
  }
}

function nodeImages(nodes: readonly PlacedNode[], outcomes: readonly BuildOutcome[]): NodeImage[] {
  return nodes.map((n, i) => ({
    node: n.name,
    platforms: n.platforms,
    root: descriptorFrom(outcomes[i]!.metadata["containerimage.descriptor"], `node ${n.name}`),
  }));
}

/** Buildx's metadata keys for the joined image, and each platform's manifest with its node. */
function imageMetadata(
  index: Descriptor,
  manifests: readonly PlatformManifest[],
  names: readonly string[],
): Record<string, unknown> {
  return {
    "containerimage.digest": index.digest,
    "containerimage.descriptor": index,
    ...(names.length ? { "image.name": names.join(",") } : {}),
    "kiln.platforms": platformMetadata(manifests),
  };
}

function platformMetadata(manifests: readonly PlatformManifest[]): Record<string, unknown> {
  return Object.fromEntries(
    manifests.map((m) => [
      formatPlatform(m.platform),
      { node: m.node, digest: m.descriptor.digest, descriptor: m.descriptor },
    ]),
  );
}

/** Builds `req` across `placement`'s nodes and joins the results. */
export async function runMultiNodeBuild(
  req: BuildRequest,
  placement: NodePlacement,
  opts: MultiNodeBuildOptions,
): Promise<BuildOutcome> {
  const nodes = placement.nodes;
  const tmp = await mkdtemp(join(tmpdir(), "kiln-multi-node-"));
  try {
    const plan = splitOutputs(req, nodes, tmp);
    const outcomes = await buildOnNodes(req, nodes, plan, opts);
    const warnings = [...new Set(outcomes.flatMap((o) => o.warnings))];
    if (req.cacheTo.some((c) => c.type !== "inline")) {
      warnings.push(
        `the cache of a build across nodes (${nodes.map((n) => n.name).join(", ")}) is exported by each node for its own platforms: a shared cache destination keeps the last node's`,
      );
    }
    let metadata: Record<string, unknown> = {};
    let imageId: string | undefined;
    let store: FileContentStore | undefined;
    for (const j of plan.joins) {
      switch (j.kind) {
        case "push": {
          const images = nodeImages(nodes, outcomes);
          const { index, manifests } = await step(
            opts.onProgress,
            `merging manifest list ${j.output.names.join(", ")}`,
            () => pushJoinedIndex(j.output, images, req.platforms, { env: opts.env, signal: opts.signal }),
          );
          metadata = imageMetadata(index, manifests, j.output.names);
          imageId = index.digest;
          break;
        }
        case "archive": {
          store ??= await FileContentStore.open(join(tmp, "store"));
          const s = store;
          const { index, manifests } = await step(
            opts.onProgress,
            `joining ${j.output.type} archives of ${nodes.map((n) => n.name).join(", ")}`,
            async () => {
              const images: NodeImage[] = [];
              for (const [i, n] of nodes.entries()) {
                images.push({
                  node: n.name,
                  platforms: n.platforms,
                  root: await importImageArchive(j.files[i]!, s),
                });
              }
              const manifests = inRequestedOrder(
                await platformManifests(images, async (image) =>
                  JSON.parse((await s.readBytes(image.root.digest)).toString("utf8")),
                ),
                req.platforms,
              );
              const joined = joinedIndex(manifests, j.output.attrs, j.output.type !== "docker");
              await s.writeBytes(joined.bytes, { expected: joined.descriptor.digest });
              await writeJoinedArchive(j.output, s, joined.descriptor, opts.stdout);
              return { index: joined.descriptor, manifests };
            },
          );
          metadata = imageMetadata(index, manifests, j.output.names);
          imageId = index.digest;
          break;
        }
        case "rootfs-tar":
          await step(
            opts.onProgress,
            `joining root filesystems of ${nodes.map((n) => n.name).join(", ")}`,
            () => writeJoinedRootfsTar(j.parts, j.output.dest, opts.stdout),
          );
          break;
        case "none":
          break;
      }
    }
    if (imageId === undefined) {
      // No joined image: each node's own image (outputs that stay on the node), as far as known.
      const known = nodes.flatMap((n, i) => {
        const d = outcomes[i]!.metadata["containerimage.descriptor"];
        if (d === undefined || n.platforms.length !== 1) return [];
        const descriptor = descriptorFrom(d, `node ${n.name}`);
        if (descriptor.mediaType.includes("index") || descriptor.mediaType.includes("list")) return [];
        return [{ node: n.name, platform: n.platforms[0]!, descriptor }];
      });
      if (known.length) metadata = { "kiln.platforms": platformMetadata(known) };
    }
    return { warnings, metadata, ...(imageId ? { imageId } : {}) };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
