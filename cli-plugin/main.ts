// Entry point of `kiln` and of the Docker CLI plugin `docker-kiln`.
import { fileURLToPath } from "node:url";
import { Command, CommanderError } from "commander";
import { registerBuildCommand } from "./commands/build.js";
import { registerCreateCommand } from "./commands/create.js";
import { registerDebugCommand } from "./commands/debug.js";
import { registerDiskUsageCommands } from "./commands/disk-usage.js";
import { registerInspectCommand } from "./commands/inspect.js";
import { registerLsCommand } from "./commands/ls.js";
import { registerRmCommand } from "./commands/rm.js";
import { registerStopCommand } from "./commands/stop.js";
import { registerUseCommand } from "./commands/use.js";
import { registerVersionCommand } from "./commands/version.js";
import { exitCodeFor, formatError, UsageError } from "./errors.js";
import {
  commandArgs,
  installPlugin,
  kilnExecutablePath,
  METADATA_COMMAND,
  pluginMetadata,
} from "./plugin.js";

async function main(): Promise<number> {
  if (process.argv[2] === METADATA_COMMAND) {
    process.stdout.write(`${JSON.stringify(pluginMetadata(), null, 2)}\n`);
    return 0;
  }
  const program = new Command("kiln")
    .description("Kiln: build container images with a BuildKit-class engine")
    .option(
      "--builder <name>",
      "override the configured builder instance (env: KILN_BUILDER, BUILDX_BUILDER)",
    )
    .option("-D, --debug", "enable debug logging")
    .exitOverride()
    .showHelpAfterError();
  registerBuildCommand(program);
  registerCreateCommand(program);
  registerUseCommand(program);
  registerLsCommand(program);
  registerInspectCommand(program);
  registerStopCommand(program);
  registerRmCommand(program);
  registerDebugCommand(program);
  registerDiskUsageCommands(program);
  registerVersionCommand(program);
  program
    .command("install-plugin")
    .description("link docker-kiln into the Docker CLI plugin directory ($DOCKER_CONFIG/cli-plugins)")
    .action(() => {
      const target = installPlugin(kilnExecutablePath(fileURLToPath(import.meta.url)));
      process.stdout.write(`installed ${target}\n`);
    });
  try {
    await program.parseAsync(commandArgs(process.argv, process.env), { from: "user" });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (
        err.code === "commander.helpDisplayed" ||
        err.code === "commander.version" ||
        err.code === "commander.help"
      )
        return 0;
      return 2;
    }
    process.stderr.write(errorReport(formatError(err)));
    return exitCodeFor(err);
  }
}

/** A multi-line report (a failed step's log and Dockerfile excerpt) keeps its lines; the last says ERROR. */
function errorReport(message: string): string {
  const lines = message.split("\n");
  const last = lines.pop() ?? "";
  return `${lines.map((l) => `${l}\n`).join("")}ERROR: ${last}\n`;
}

/**
 * Exits once stdout and stderr have been handed all that was written: the command is over, and a
 * connection some library keeps open (an idle ssh login to a Docker host) must not keep the CLI
 * alive after it.
 */
function exitWhenFlushed(code: number): void {
  process.exitCode = code;
  process.stdout.write("", () => process.stderr.write("", () => process.exit(code)));
}

main().then(exitWhenFlushed, (err) => {
  process.stderr.write(`ERROR: ${formatError(err)}\n`);
  exitWhenFlushed(err instanceof UsageError ? 2 : 1);
});
