// Shared by the registry client's integration tests: random images in a content store, loopback
// proxies in front of the plain registry (tampering, failing), and skopeo as the independent reader.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { pack } from "tar-stream";
import type { ContentStore } from "../../src/content/types.js";
import { sha256Digest } from "../../src/oci/digest.js";
import { type Descriptor, type ImageConfig, type ImageManifest, MediaType } from "../../src/oci/spec.js";

const execFileP = promisify(execFile);

export interface TestImage {
  readonly manifestBytes: Buffer;
  readonly manifest: ImageManifest;
  readonly layer: Descriptor;
  readonly config: Descriptor;
}

/** A one-file tar layer with `size` random bytes, gzipped: every call gives a new digest. */
export async function randomLayer(size = 4096): Promise<{ tar: Buffer; gz: Buffer }> {
  const p = pack();
  p.entry({ name: "random.bin", mode: 0o644, mtime: new Date(0) }, randomBytes(size));
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p) chunks.push(c as Buffer);
  const tar = Buffer.concat(chunks);
  return { tar, gz: gzipSync(tar) };
}

/** Writes a random single-layer linux/amd64 OCI image into the store. */
export async function writeRandomImage(store: ContentStore, layerSize = 4096): Promise<TestImage> {
  const { tar, gz } = await randomLayer(layerSize);
  const layerInfo = await store.writeBytes(gz);
  const config: ImageConfig = {
    architecture: "amd64",
    os: "linux",
    config: { Cmd: ["/random.bin"] },
    rootfs: { type: "layers", diff_ids: [sha256Digest(tar)] },
  };
  const configInfo = await store.writeBytes(JSON.stringify(config));
  const layer: Descriptor = {
    mediaType: MediaType.OciLayerGzip,
    digest: layerInfo.digest,
    size: layerInfo.size,
  };
  const configDesc: Descriptor = {
    mediaType: MediaType.OciConfig,
    digest: configInfo.digest,
    size: configInfo.size,
  };
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: configDesc,
    layers: [layer],
  };
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  await store.writeBytes(manifestBytes);
  return { manifestBytes, manifest, layer, config: configDesc };
}

export interface LoopbackProxy {
  /** host:port of the proxy. */
  readonly address: string;
  /** Requests seen, as `METHOD path`. */
  readonly seen: string[];
  close(): Promise<void>;
}

export interface ProxyBehaviour {
  /** Answers the request itself (return true) instead of forwarding it. */
  intercept?(req: http.IncomingMessage, res: http.ServerResponse): boolean;
  /** Rewrites a forwarded response body (whole). */
  rewriteBody?(req: http.IncomingMessage, body: Buffer): Buffer;
}

/** An HTTP proxy on 127.0.0.1 that forwards to `upstream` (host:port), with optional mischief. */
export async function startProxy(upstream: string, behaviour: ProxyBehaviour = {}): Promise<LoopbackProxy> {
  const [upHost, upPort] = upstream.split(":");
  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    if (behaviour.intercept?.(req, res)) return;
    const out = http.request(
      { host: upHost, port: Number(upPort), method: req.method, path: req.url, headers: req.headers },
      async (up) => {
        const chunks: Buffer[] = [];
        for await (const c of up) chunks.push(c as Buffer);
        let body: Buffer = Buffer.concat(chunks);
        if (behaviour.rewriteBody) body = behaviour.rewriteBody(req, body);
        const headers = { ...up.headers };
        // Location headers name the upstream; the client must keep talking to the proxy.
        if (typeof headers.location === "string")
          headers.location = headers.location.replace(upstream, address);
        res.writeHead(up.statusCode ?? 502, headers);
        res.end(req.method === "HEAD" ? undefined : body);
      },
    );
    out.on("error", (err) => {
      res.writeHead(502);
      res.end(String(err));
    });
    req.pipe(out);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    address,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** `skopeo inspect [--raw]` of a reference, as an independent check of what the registry holds. */
export async function skopeoInspect(
  ref: string,
  opts: { raw?: boolean; creds?: string; certDir?: string; tlsVerify?: boolean } = {},
): Promise<string> {
  const args = ["inspect"];
  if (opts.raw) args.push("--raw");
  if (opts.creds) args.push("--creds", opts.creds);
  if (opts.certDir) args.push("--cert-dir", opts.certDir);
  if (opts.tlsVerify === false) args.push("--tls-verify=false");
  args.push(`docker://${ref}`);
  const { stdout } = await execFileP("skopeo", args, { maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

/** A repository name no other test run uses. */
export function uniqueRepo(prefix: string): string {
  return `kiln-test/${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString("hex")}`;
}
