// The registry client an engine holds: one set of connections, TLS settings, credentials and
// token caches for all registries, with pull and push operations on top.
import type { Readable } from "node:stream";
import type { ContentStore } from "../content/types.js";
import type { Digest } from "../oci/digest.js";
import type { ImageRef } from "../oci/image-ref.js";
import type { Platform } from "../oci/platform.js";
import type { Descriptor } from "../oci/spec.js";
import { RegistryAuthorizer } from "./auth.js";
import { DEFAULT_CERTS_DIR } from "./certs-dir.js";
import {
  type CredentialLookup,
  DockerConfigCredentials,
  defaultDockerConfigDir,
  type RegistryCredentials,
} from "./credentials.js";
import type { RegistryEvent, RegistryEventListener } from "./events.js";
import {
  type BlobFetchOptions,
  type FetchedManifest,
  RegistryPuller,
  type ResolvedRegistryImage,
} from "./pull.js";
import {
  type BlobPushOptions,
  type BlobPushResult,
  type ImagePushOptions,
  type ImagePushSource,
  type ManifestPushOptions,
  RegistryPusher,
} from "./push.js";
import { RegistryHttp, type RepoRef } from "./registry-http.js";
import { RegistryTransport, type RetryPolicy } from "./transport.js";

export interface RegistryClientOptions {
  /** Registries allowed over plain HTTP and unverified TLS: `host[:port]`, bare hosts, IPv4 CIDRs. */
  readonly insecureRegistries?: readonly string[];
  /** Roots of per-host TLS directories (`HOST[:PORT]/*.crt`, `*.cert`+`*.key`). */
  readonly certsDirs?: readonly string[];
  /** Where config.json lives; `$DOCKER_CONFIG` or `~/.docker` by default. */
  readonly dockerConfigDir?: string;
  /** Replaces the config.json lookup entirely (explicit overrides still win). */
  readonly credentials?: CredentialLookup;
  /** PATH for `docker-credential-*` helpers; the process's own by default. */
  readonly credentialHelperPath?: string;
  readonly userAgent?: string;
  readonly retry?: Partial<RetryPolicy>;
  readonly socketTimeoutMs?: number;
  /** Receives every event of every operation (per-call listeners get their own operation's). */
  readonly onEvent?: RegistryEventListener;
}

export class RegistryClient {
  private readonly transport: RegistryTransport;
  private readonly http: RegistryHttp;
  private readonly puller: RegistryPuller;
  private readonly pusher: RegistryPusher;
  /** Registry → credentials (or null: anonymous), set by `setCredentials`. */
  private readonly overrides = new Map<string, RegistryCredentials | null>();
  private readonly listeners = new Set<RegistryEventListener>();
  private readonly looked = new Map<string, Promise<RegistryCredentials | undefined>>();

  constructor(opts: RegistryClientOptions = {}) {
    if (opts.onEvent) this.listeners.add(opts.onEvent);
    const emit: RegistryEventListener = (event) => {
      for (const l of this.listeners) l(event);
    };
    this.transport = new RegistryTransport({
      insecureRegistries: opts.insecureRegistries,
      certsDirs: opts.certsDirs ?? [DEFAULT_CERTS_DIR],
      userAgent: opts.userAgent ?? "kiln",
      retry: opts.retry,
      socketTimeoutMs: opts.socketTimeoutMs,
      onRetry: (n) => {
        let registry = "";
        try {
          registry = new URL(n.url).host;
        } catch {
          // The URL came from a request we made; it parses.
        }
        emit({ type: "retry", registry, ...n });
      },
    });
    const fallback =
      opts.credentials ??
      new DockerConfigCredentials(opts.dockerConfigDir ?? defaultDockerConfigDir(), opts.credentialHelperPath)
        .lookup;
    const lookup: CredentialLookup = async (registry) => {
      const override = this.overrides.get(registry);
      if (override !== undefined) return override ?? undefined;
      // Helpers are programs: ask each once per client, not on every Basic-authenticated request.
      let found = this.looked.get(registry);
      if (!found) {
        found = fallback(registry);
        this.looked.set(registry, found);
        found.catch(() => this.looked.delete(registry));
      }
      return found;
    };
    this.http = new RegistryHttp(this.transport, new RegistryAuthorizer(this.transport, lookup));
    const tee: RegistryEventListener = (event) => emit(event);
    this.puller = new RegistryPuller(this.http, tee);
    this.pusher = new RegistryPusher(this.http, tee);
  }

  /**
   * Credentials for one registry that win over config.json (as `--creds`); `null` forces anonymous
   * access, `undefined` removes the override. Takes effect for tokens fetched from now on.
   */
  setCredentials(registry: string, creds: RegistryCredentials | null | undefined): void {
    if (creds === undefined) this.overrides.delete(registry);
    else this.overrides.set(registry, creds);
  }

  /** Adds a listener for all events; returns a function that removes it. */
  subscribe(listener: (event: RegistryEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  resolve(ref: ImageRef): Promise<Descriptor> {
    return this.puller.resolve(ref);
  }

  fetchManifest(ref: ImageRef, digest?: Digest): Promise<FetchedManifest> {
    return this.puller.fetchManifest(ref, digest);
  }

  resolveImage(ref: ImageRef, platform: Platform): Promise<ResolvedRegistryImage> {
    return this.puller.resolveImage(ref, platform);
  }

  fetchBlob(ref: RepoRef, desc: Descriptor, opts?: BlobFetchOptions): Promise<Readable> {
    return this.puller.fetchBlob(ref, desc, opts);
  }

  pullBlobToStore(
    store: ContentStore,
    ref: RepoRef,
    desc: Descriptor,
    opts?: BlobFetchOptions,
  ): Promise<{ fetched: boolean }> {
    return this.puller.pullBlobToStore(store, ref, desc, opts);
  }

  pushBlob(
    ref: RepoRef,
    desc: Descriptor,
    openStream: () => Readable,
    opts?: BlobPushOptions,
  ): Promise<BlobPushResult> {
    return this.pusher.pushBlob(ref, desc, openStream, opts);
  }

  pushManifest(ref: ImageRef, bytes: Buffer, mediaType: string, opts?: ManifestPushOptions): Promise<Digest> {
    return this.pusher.pushManifest(ref, bytes, mediaType, opts);
  }

  pushImage(ref: ImageRef, source: ImagePushSource, opts?: ImagePushOptions): Promise<Digest> {
    return this.pusher.pushImage(ref, source, opts);
  }

  /** Closes idle connections; the client must not be used afterwards. */
  close(): void {
    this.transport.close();
  }
}
