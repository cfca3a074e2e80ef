// The registry client an engine holds: one set of connections, TLS settings, credentials and
// token caches for all registries, with pull and push operations on top. A build whose client
// lends its own registry credentials gets a client of its own (`forBuild`) on the same connections.
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
  type StreamingBlobUpload,
} from "./push.js";
import { RegistryHttp, type RepoRef } from "./registry-http.js";
import { clientFirstCredentials, credentialsFingerprint } from "./session-credentials.js";
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
  /** Registry → mirror hosts tried first for pulls. */
  readonly mirrors?: Readonly<Record<string, readonly string[]>>;
}

/** What a client shares with the clients derived from it for builds (see `forBuild`). */
interface SharedRegistryState {
  readonly transport: RegistryTransport;
  readonly listeners: Set<RegistryEventListener>;
  /** Registry → credentials (or null: anonymous), set by `setCredentials`. */
  readonly overrides: Map<string, RegistryCredentials | null>;
  /** The engine host's own credentials (config.json, helpers), asked once per registry. */
  readonly hostCredentials: CredentialLookup;
  readonly mirrors: Readonly<Record<string, readonly string[]>>;
}

export class RegistryClient {
  private readonly shared: SharedRegistryState;
  /** Whether this client owns the connections (false for a build's client from `forBuild`). */
  private readonly ownsTransport: boolean;
  private readonly lookup: CredentialLookup;
  private readonly http: RegistryHttp;
  private readonly puller: RegistryPuller;
  private readonly pusher: RegistryPusher;

  /** `buildCredentials` is for `forBuild`; callers give only `opts`. */
  constructor(
    opts: RegistryClientOptions = {},
    buildCredentials?: { readonly parent: RegistryClient; readonly first: CredentialLookup },
  ) {
    this.ownsTransport = !buildCredentials;
    this.shared = buildCredentials?.parent.shared ?? RegistryClient.sharedState(opts);
    const shared = this.shared;
    const emit: RegistryEventListener = (event) => {
      for (const l of shared.listeners) l(event);
    };
    const first = buildCredentials
      ? clientFirstCredentials(buildCredentials.first, shared.hostCredentials)
      : undefined;
    this.lookup = async (registry) => {
      const override = shared.overrides.get(registry);
      if (override !== undefined) return override ?? undefined;
      return (first ?? shared.hostCredentials)(registry);
    };
    this.http = new RegistryHttp(
      shared.transport,
      new RegistryAuthorizer(shared.transport, this.lookup),
      shared.mirrors,
    );
    this.puller = new RegistryPuller(this.http, emit);
    this.pusher = new RegistryPusher(this.http, emit);
  }

  private static sharedState(opts: RegistryClientOptions): SharedRegistryState {
    const listeners = new Set<RegistryEventListener>();
    if (opts.onEvent) listeners.add(opts.onEvent);
    const transport = new RegistryTransport({
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
        for (const l of listeners) l({ type: "retry", registry, ...n });
      },
    });
    const fallback =
      opts.credentials ??
      new DockerConfigCredentials(opts.dockerConfigDir ?? defaultDockerConfigDir(), opts.credentialHelperPath)
        .lookup;
    // Helpers are programs: ask each once per client, not on every Basic-authenticated request.
    const looked = new Map<string, Promise<RegistryCredentials | undefined>>();
    const hostCredentials: CredentialLookup = (registry) => {
      let found = looked.get(registry);
      if (!found) {
        found = fallback(registry);
        looked.set(registry, found);
        found.catch(() => looked.delete(registry));
      }
      return found;
    };
    return { transport, listeners, overrides: new Map(), hostCredentials, mirrors: opts.mirrors ?? {} };
  }

  /**
   * A client for one build whose registry credentials come from `clientCredentials` (the build's
   * session: what the client's own Docker config holds) before this engine host's. It shares this
   * client's connections, TLS settings, overrides and listeners, but has its own tokens, since
   * they carry the client's identity. Closing it closes nothing.
   */
  forBuild(clientCredentials: CredentialLookup): RegistryClient {
    return new RegistryClient({}, { parent: this, first: clientCredentials });
  }

  /**
   * Who this client is at `registry`, as an opaque in-memory fingerprint (see
   * credentialsFingerprint): what one identity resolved is not served to another from a cache.
   * A lookup that fails counts as its own identity here; the operation itself reports the failure.
   */
  async credentialsIdentity(registry: string): Promise<string> {
    try {
      return credentialsFingerprint(registry, await this.lookup(registry));
    } catch {
      return "unavailable";
    }
  }

  /**
   * Credentials for one registry that win over config.json (as `--creds`); `null` forces anonymous
   * access, `undefined` removes the override. Takes effect for tokens fetched from now on.
   */
  setCredentials(registry: string, creds: RegistryCredentials | null | undefined): void {
    if (creds === undefined) this.shared.overrides.delete(registry);
    else this.shared.overrides.set(registry, creds);
  }

  /** Adds a listener for all events (of this client and those sharing its connections); returns a function that removes it. */
  subscribe(listener: (event: RegistryEvent) => void): () => void {
    this.shared.listeners.add(listener);
    return () => this.shared.listeners.delete(listener);
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

  /** An upload fed as the blob is made (see RegistryPusher.startStreamingUpload). */
  startStreamingUpload(ref: RepoRef): Promise<StreamingBlobUpload> {
    return this.pusher.startStreamingUpload(ref);
  }

  pushManifest(ref: ImageRef, bytes: Buffer, mediaType: string, opts?: ManifestPushOptions): Promise<Digest> {
    return this.pusher.pushManifest(ref, bytes, mediaType, opts);
  }

  pushImage(ref: ImageRef, source: ImagePushSource, opts?: ImagePushOptions): Promise<Digest> {
    return this.pusher.pushImage(ref, source, opts);
  }

  /** Closes idle connections; the client (and those from `forBuild`) must not be used afterwards. */
  close(): void {
    if (this.ownsTransport) this.shared.transport.close();
  }
}
