// Entry point of kilnd, the engine daemon: opens the engine on its state directory and serves it
// on a unix socket and/or TCP with mutual TLS; `kilnd dial-stdio` joins stdio to a running
// daemon's socket (for `docker exec` / `kubectl exec` transports); `kilnd version`.
import { existsSync, readFileSync } from "node:fs";
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { openEngine } from "../engine/engine.js";
import type { SnapshotterPreference } from "../snapshot/choose.js";
import { KILN_COMMIT, KILN_PACKAGE, KILN_VERSION } from "../version.js";
import { dialStdio } from "./dial-stdio.js";
import { defaultEngineAddress, formatEngineAddress, parseEngineAddress } from "./engine-address.js";
import { EMPTY_ENGINE_CONFIG, type EngineConfig, loadEngineConfig } from "./engine-config.js";
import { type ListenOptions, serveEngine } from "./engine-server.js";

/** Read when present and no --config is given, as buildkitd reads /etc/buildkit/buildkitd.toml. */
const DEFAULT_CONFIG_FILE = "/etc/kiln/kilnd.toml";

class UsageError extends Error {}

interface DaemonFlags {
  root: string;
  addr?: string[];
  tlscacert?: string;
  tlscert?: string;
  tlskey?: string;
  snapshotter: SnapshotterPreference;
  allowInsecureEntitlement: string[];
  gcInterval: string;
  config?: string;
}

function log(line: string): void {
  process.stderr.write(`kilnd: ${line}\n`);
}

function readPem(flag: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new UsageError(`${flag} ${path}: ${(err as Error).message}`);
  }
}

function listenOptions(flags: DaemonFlags): ListenOptions {
  let unix: string | undefined;
  let tcp: ListenOptions["tcp"];
  for (const spec of flags.addr?.length ? flags.addr : [defaultEngineAddress()]) {
    let address: ReturnType<typeof parseEngineAddress>;
    try {
      address = parseEngineAddress(spec);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    if (address.kind === "unix") {
      if (unix) throw new UsageError("give at most one unix:// --addr");
      unix = address.path;
    } else {
      if (tcp) throw new UsageError("give at most one tcp:// --addr");
      if (!flags.tlscacert || !flags.tlscert || !flags.tlskey) {
        throw new UsageError(
          `${spec} needs --tlscacert, --tlscert and --tlskey: kilnd serves TCP only with mutual TLS`,
        );
      }
      tcp = {
        host: address.host,
        port: address.port,
        tls: {
          ca: readPem("--tlscacert", flags.tlscacert),
          cert: readPem("--tlscert", flags.tlscert),
          key: readPem("--tlskey", flags.tlskey),
        },
      };
    }
  }
  return { unix, tcp };
}

async function runDaemon(flags: DaemonFlags): Promise<void> {
  const listen = listenOptions(flags);
  const gcSeconds = Number(flags.gcInterval);
  if (!Number.isFinite(gcSeconds) || gcSeconds < 0)
    throw new UsageError(`--gc-interval ${flags.gcInterval}: expected seconds (0 turns it off)`);
  const configFile = flags.config ?? (existsSync(DEFAULT_CONFIG_FILE) ? DEFAULT_CONFIG_FILE : undefined);
  let config: EngineConfig = EMPTY_ENGINE_CONFIG;
  if (configFile) {
    try {
      config = await loadEngineConfig(configFile);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    log(`configuration from ${configFile}`);
    if (config.ignored.length) log(`${configFile}: not used by kilnd: ${config.ignored.join(", ")}`);
  }
  const engine = await openEngine({
    stateDir: flags.root,
    snapshotter: flags.snapshotter,
    allowedEntitlements: [...new Set([...flags.allowInsecureEntitlement, ...config.allowedEntitlements])],
    gcIntervalMs: gcSeconds > 0 && config.gc ? gcSeconds * 1000 : undefined,
    insecureRegistries: config.insecureRegistries,
    registryMirrors: config.registryMirrors,
    ...(config.gcPolicy ? { gcPolicy: config.gcPolicy } : {}),
    ...(config.gcSpace ? { gcSpace: config.gcSpace } : {}),
  });
  let server: Awaited<ReturnType<typeof serveEngine>>;
  try {
    server = await serveEngine(engine, listen, { log });
  } catch (err) {
    await engine.close();
    throw err;
  }
  if (server.unixPath) log(`listening on ${formatEngineAddress({ kind: "unix", path: server.unixPath })}`);
  if (listen.tcp && server.tcpPort !== undefined) {
    log(
      `listening on ${formatEngineAddress({ kind: "tcp", host: listen.tcp.host, port: server.tcpPort })} (mutual TLS)`,
    );
  }
  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        log(`${signal} again: exiting without waiting for builds`);
        process.exit(130);
      }
      stopping = true;
      log(`${signal}: cancelling builds and shutting down`);
      server
        .close()
        .then(() => engine.close())
        .then(resolve, (err: Error) => {
          log(`shutdown: ${err.message}`);
          resolve();
        });
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
  });
}

async function main(argv: string[]): Promise<number> {
  const program = new Command("kilnd")
    .description("Kiln's build engine daemon")
    .enablePositionalOptions()
    .exitOverride()
    .showHelpAfterError()
    .option("--root <dir>", "where the engine keeps its state", "/var/lib/kiln")
    .option(
      "--addr <address>",
      `listening address, unix:///path or tcp://host:port; repeatable (default ${defaultEngineAddress()})`,
      (value: string, previous: string[] = []) => [...previous, value],
    )
    .option("--tlscacert <file>", "CA certificate that client certificates must be signed by (TCP)")
    .option("--tlscert <file>", "the daemon's certificate (TCP)")
    .option("--tlskey <file>", "the daemon's private key (TCP)")
    .addOption(
      new Option("--snapshotter <kind>", "how root filesystems are stored")
        .choices(["auto", "overlayfs", "copy"])
        .default("auto"),
    )
    .addOption(
      new Option(
        "--allow-insecure-entitlement <name>",
        "let builds ask for network.host or security.insecure (repeatable)",
      )
        // An argument parser (not .choices) so that the flag can repeat; it validates itself.
        .argParser((value: string, previous: string[]) => {
          if (value !== "network.host" && value !== "security.insecure") {
            throw new InvalidArgumentError("expected network.host or security.insecure");
          }
          return [...previous, value];
        })
        .default([]),
    )
    .option(
      "--config <file>",
      `engine configuration (buildkitd.toml's registry, worker.oci gc and insecure-entitlements keys; default ${DEFAULT_CONFIG_FILE} when present)`,
    )
    .option(
      "--gc-interval <seconds>",
      "how often garbage collection runs with the configured or default policy (0: never)",
      "60",
    )
    .action(async (flags: DaemonFlags) => runDaemon(flags));
  program
    .command("dial-stdio")
    .description("connect stdin/stdout to a running kilnd (for docker exec, kubectl exec, ssh)")
    .option("--addr <address>", "the daemon's address", defaultEngineAddress())
    .action(async (flags: { addr: string }) => {
      let address: ReturnType<typeof parseEngineAddress>;
      try {
        address = parseEngineAddress(flags.addr);
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
      await dialStdio(address, process.stdin, process.stdout);
    });
  program
    .command("version")
    .description("show the daemon's version")
    .action(() => {
      process.stdout.write(`kilnd ${KILN_PACKAGE} v${KILN_VERSION} ${KILN_COMMIT}\n`);
    });
  try {
    await program.parseAsync(argv, { from: "user" });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.code === "commander.helpDisplayed" || err.code === "commander.help" ? 0 : 2;
    }
    log(`error: ${err instanceof Error ? err.message : String(err)}`);
    return err instanceof UsageError ? 2 : 1;
  }
}

main(process.argv.slice(2)).then(
  // stdin (dial-stdio) and signal handlers would otherwise keep the process alive.
  (code) => process.exit(code),
  (err: unknown) => {
    log(`error: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
