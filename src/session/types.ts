// The session: what only the client has and the engine asks for during a build — local
// directories (synced incrementally), secrets, SSH agents, registry credentials — and where
// client-side outputs go.
// In-process builds use a direct implementation; remote builds carry it over the engine API.
import type { Duplex, Writable } from "node:stream";
import type { RegistryCredentials } from "../registry/credentials.js";
import type { SyncOptions, SyncStats } from "../source/local-sync.js";
import type { CacheDirAccess } from "./cache-dir.js";

/** Names of the session's local directories: the build context, and named local contexts. */
export const CONTEXT_LOCAL_NAME = "context";
export const namedContextLocalName = (name: string) => `context:${name}`;

/** A client-side destination for an exported stream, by output position in the request. */
export interface ExportTarget {
  /** Index into BuildRequest.outputs. */
  readonly output: number;
  /** What the stream is: a tar to unpack into a directory, or bytes to write to the file/stdout. */
  readonly kind: "unpack-tar" | "file" | "docker-load";
  /** For per-platform splitting of local outputs: the sub-directory (`linux_amd64`). */
  readonly subdir?: string;
}

export interface BuildSession {
  readonly id: string;
  /**
   * A stable key for the client's local directory `name` (e.g. a hash of the client's host and the
   * directory's path), so the engine reuses its copy across builds and syncs only what changed.
   */
  sharedKey(name: string): string;
  /**
   * The client's own directory behind the local directory `name`, when the session runs on the
   * client's machine: a remote engine's sync reads it to send metadata and changed files.
   */
  localDirectory?(name: string): string | undefined;
  /** Brings the engine-side copy `dest` of the client's local directory `name` up to date. */
  syncLocal(name: string, dest: string, opts: SyncOptions, signal: AbortSignal): Promise<SyncStats>;
  /** A secret's value, or undefined when the client has no secret of that id. */
  getSecret(id: string): Promise<Buffer | undefined>;
  /** A connection to the client's SSH agent `id` (one per agent request), or undefined if none. */
  openSshAgent(id: string): Promise<Duplex | undefined>;
  /** Whether the client has an SSH agent or keys for `id`. */
  hasSsh(id: string): boolean;
  /**
   * The client's credentials for a registry (`host[:port]`, `docker.io` for Docker Hub), as
   * Buildx's session auth provider answers them from the client's Docker config; undefined when
   * the client has none. The engine uses them for this build's pulls and pushes before its own.
   * Absent when the client cannot answer (the engine then uses only its own credentials).
   */
  registryCredentials?(host: string): Promise<RegistryCredentials | undefined>;
  /**
   * The client's local cache directories (`--cache-to type=local`, `--cache-from type=local`).
   * Absent when the client cannot serve them (a client that predates them).
   */
  readonly cacheDirs?: CacheDirAccess;
  /** A stream to the client for a client-side output; resolves when the client has stored it all. */
  openExport(target: ExportTarget): Promise<{ stream: Writable; done: Promise<void> }>;
}
