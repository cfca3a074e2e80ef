// The remote driver: an engine (kilnd) already running at `unix:///path` or `tcp://HOST:PORT`
// (mutual TLS). Kiln neither starts nor stops it; it only connects.

import { readFileSync } from "node:fs";
import { isIP, connect as netConnect } from "node:net";
import type { Duplex } from "node:stream";
import { checkServerIdentity, type PeerCertificate, connect as tlsConnect } from "node:tls";
import { dialEngine } from "../../src/client/dial-engine.js";
import type { EngineTarget } from "../../src/client/remote-engine.js";
import type { BuildEngine } from "../../src/engine/types.js";
import {
  type Driver,
  type DriverFactory,
  type DriverFeatures,
  type DriverInfo,
  DriverOptionError,
  engineFeatures,
  type InitConfig,
  optionValidators,
  parseBooleanOption,
  type RemoveOptions,
  validateDriverOptions,
} from "../driver.js";

/** How long status and version checks wait for the engine before calling it inactive. */
const PROBE_TIMEOUT_MS = 5_000;

export interface RemoteTlsPaths {
  readonly cacert: string;
  readonly cert: string;
  readonly key: string;
  readonly servername?: string;
}

export type RemoteAddress =
  | { readonly kind: "unix"; readonly path: string }
  | { readonly kind: "tcp"; readonly host: string; readonly port: number; readonly tls: RemoteTlsPaths };

const absolutePath = (value: string, key: string) => {
  if (!value.startsWith("/"))
    throw new DriverOptionError(`driver option ${key} must be an absolute path: ${value}`);
};

export const remoteFactory: DriverFactory = {
  name: "remote",
  usage: () => "remote: an engine (kilnd) already running at unix:///path or tcp://HOST:PORT",
  priority: (endpoint) => (/^(unix|tcp):\/\//.test(endpoint) ? 10 : 0),
  allowsInstances: true,
  options: [
    {
      key: "cacert",
      description: "CA certificate the engine's certificate is signed by",
      validate: absolutePath,
    },
    { key: "cert", description: "client certificate", validate: absolutePath },
    { key: "key", description: "client private key", validate: absolutePath },
    {
      key: "servername",
      description: "name the engine's certificate carries",
      validate: optionValidators.nonEmpty,
    },
    {
      key: "default-load",
      description: "load images into Docker when a build names no output",
      validate: optionValidators.boolean,
    },
  ],
  create(config: InitConfig): Driver {
    validateDriverOptions(this, config.driverOpts);
    return new RemoteDriver(config, remoteAddress(config.endpoint, config.driverOpts));
  },
};

/** The engine's address from the endpoint and TLS options, checked as Buildx checks them. */
export function remoteAddress(endpoint: string, opts: Readonly<Record<string, string>>): RemoteAddress {
  const { cacert, cert, key, servername } = opts;
  const anyTls = cacert !== undefined || cert !== undefined || key !== undefined || servername !== undefined;
  if (anyTls && cacert === undefined)
    throw new DriverOptionError("TLS options need cacert: give driver option cacert=/path/to/ca.pem");
  if ((cert === undefined) !== (key === undefined)) {
    throw new DriverOptionError("driver options cert and key must be given together");
  }
  if (endpoint.startsWith("unix://")) {
    const path = endpoint.slice("unix://".length);
    if (!path.startsWith("/"))
      throw new DriverOptionError(
        `invalid endpoint ${endpoint}: give an absolute socket path, e.g. unix:///run/kiln/kilnd.sock`,
      );
    if (anyTls) throw new DriverOptionError(`TLS options apply to tcp:// endpoints, not ${endpoint}`);
    return { kind: "unix", path };
  }
  if (endpoint.startsWith("tcp://")) {
    let url: URL;
    try {
      url = new URL(endpoint);
    } catch {
      throw new DriverOptionError(`invalid endpoint ${endpoint}: expected tcp://HOST:PORT`);
    }
    const port = Number(url.port);
    if (!url.hostname || !url.port || !Number.isInteger(port)) {
      throw new DriverOptionError(`invalid endpoint ${endpoint}: expected tcp://HOST:PORT`);
    }
    if (cacert === undefined || cert === undefined || key === undefined) {
      throw new DriverOptionError(
        `${endpoint} needs mutual TLS: give driver options cacert, cert and key (kilnd serves TCP only with mutual TLS)`,
      );
    }
    return {
      kind: "tcp",
      host: url.hostname.replace(/^\[(.*)\]$/, "$1"),
      port,
      tls: { cacert, cert, key, ...(servername ? { servername } : {}) },
    };
  }
  if (endpoint === "")
    throw new DriverOptionError("the remote driver needs an endpoint: unix:///path or tcp://HOST:PORT");
  throw new DriverOptionError(
    `unsupported endpoint ${endpoint} for the remote driver: use unix:///path or tcp://HOST:PORT`,
  );
}

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new Error(`cannot read ${what} ${path}: ${(err as Error).message}`);
  }
}

/** connectEngine's target for an address. */
export function engineTarget(address: RemoteAddress): EngineTarget {
  if (address.kind === "unix") return { unix: address.path };
  return {
    tcp: { host: address.host, port: address.port },
    tls: {
      ca: readPem(address.tls.cacert, "cacert"),
      cert: readPem(address.tls.cert, "cert"),
      key: readPem(address.tls.key, "key"),
      ...(address.tls.servername ? { serverName: address.tls.servername } : {}),
    },
  };
}

export class RemoteDriver implements Driver {
  readonly factory = remoteFactory;

  constructor(
    readonly config: InitConfig,
    readonly address: RemoteAddress,
  ) {}

  async bootstrap(): Promise<void> {
    const engine = await dialEngine(engineTarget(this.address));
    await engine.close();
  }

  async info(): Promise<DriverInfo> {
    try {
      const engine = await dialEngine(engineTarget(this.address), { timeoutMs: PROBE_TIMEOUT_MS });
      await engine.close();
      return { status: "running" };
    } catch (err) {
      return { status: "inactive", detail: (err as Error).message };
    }
  }

  async version(): Promise<string> {
    const engine = await dialEngine(engineTarget(this.address), { timeoutMs: PROBE_TIMEOUT_MS });
    try {
      return `v${(await engine.info()).version.replace(/^v/, "")}`;
    } finally {
      await engine.close();
    }
  }

  // The engine is not ours to stop or remove.
  async stop(): Promise<void> {}
  async rm(_opts: RemoveOptions): Promise<void> {}

  dial(): Promise<Duplex> {
    const a = this.address;
    return new Promise((resolve, reject) => {
      const socket =
        a.kind === "unix"
          ? netConnect(a.path, () => resolve(socket))
          : tlsConnect(
              {
                host: a.host,
                port: a.port,
                ca: readPem(a.tls.cacert, "cacert"),
                cert: readPem(a.tls.cert, "cert"),
                key: readPem(a.tls.key, "key"),
                // SNI carries host names only (Node warns about an IP); the certificate is checked either way.
                ...(isIP(a.tls.servername ?? a.host) ? {} : { servername: a.tls.servername ?? a.host }),
                ...(a.tls.servername
                  ? {
                      checkServerIdentity: (_h: string, cert: PeerCertificate) =>
                        checkServerIdentity(a.tls.servername!, cert),
                    }
                  : {}),
                ALPNProtocols: ["h2"],
              },
              () => resolve(socket),
            );
      socket.once("error", reject);
    });
  }

  engine(): Promise<BuildEngine> {
    return dialEngine(engineTarget(this.address));
  }

  features(): DriverFeatures {
    return engineFeatures(parseBooleanOption(this.config.driverOpts["default-load"]));
  }
}
