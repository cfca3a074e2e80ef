// TLS material for a registry from Docker's per-host certificate directories
// (`/etc/docker/certs.d/HOST[:PORT]/`): `*.crt` are extra CAs, `*.cert` + `*.key` are client pairs.
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";

export const DEFAULT_CERTS_DIR = "/etc/docker/certs.d";

export interface ClientCertPair {
  readonly certFile: string;
  readonly keyFile: string;
  readonly cert: Buffer;
  readonly key: Buffer;
}

export interface RegistryTlsFiles {
  /** The directories that were looked at and existed. */
  readonly dirs: string[];
  readonly caFiles: string[];
  readonly cas: Buffer[];
  readonly clientPairs: ClientCertPair[];
}

/**
 * The directory names that may hold a host's material. Docker uses the name exactly as written
 * (`host:port`); a colon is awkward in some file systems, so `host_port` is accepted too.
 */
export function certsDirNames(hostPort: string): string[] {
  const names = [hostPort];
  const alt = hostPort.replace(/:(\d+)$/, "_$1");
  if (alt !== hostPort) names.push(alt);
  return names;
}

/**
 * Reads the TLS material for `hostPort` from each of `roots`. A `.cert` without its `.key` (or
 * the reverse) is an error, as in Docker, because silently ignoring it makes mTLS failures baffling.
 */
export async function loadRegistryTlsFiles(
  roots: readonly string[],
  hostPort: string,
): Promise<RegistryTlsFiles> {
  const result: RegistryTlsFiles = { dirs: [], caFiles: [], cas: [], clientPairs: [] };
  for (const root of roots) {
    for (const name of certsDirNames(hostPort)) {
      const dir = join(root, name);
      let entries: string[];
      try {
        entries = (await readdir(dir)).sort();
      } catch (err) {
        if (
          (err as NodeJS.ErrnoException).code === "ENOENT" ||
          (err as NodeJS.ErrnoException).code === "ENOTDIR"
        )
          continue;
        throw err;
      }
      result.dirs.push(dir);
      for (const entry of entries) {
        const path = join(dir, entry);
        if (entry.endsWith(".crt")) {
          result.caFiles.push(path);
          result.cas.push(await readFile(path));
        } else if (entry.endsWith(".cert")) {
          const keyName = `${entry.slice(0, -".cert".length)}.key`;
          if (!entries.includes(keyName))
            throw new Error(`client certificate ${path} has no matching key ${join(dir, keyName)}`);
          const keyFile = join(dir, keyName);
          result.clientPairs.push({
            certFile: path,
            keyFile,
            cert: await readFile(path),
            key: await readFile(keyFile),
          });
        } else if (entry.endsWith(".key")) {
          const certName = `${entry.slice(0, -".key".length)}.cert`;
          if (!entries.includes(certName))
            throw new Error(`client key ${path} has no matching certificate ${join(dir, certName)}`);
        }
      }
    }
  }
  return result;
}
