// Runs the builder commands (create, use, ls, inspect, stop, rm) as a process, for tests that need
// several CLIs at once: `node --import tsx test/unit/store/builder-cli.ts create …`.
import { Command, CommanderError } from "commander";
import { registerCreateCommand } from "../../../cli-plugin/commands/create.js";
import { registerInspectCommand } from "../../../cli-plugin/commands/inspect.js";
import { registerLsCommand } from "../../../cli-plugin/commands/ls.js";
import { registerRmCommand } from "../../../cli-plugin/commands/rm.js";
import { registerStopCommand } from "../../../cli-plugin/commands/stop.js";
import { registerUseCommand } from "../../../cli-plugin/commands/use.js";
import { exitCodeFor, formatError } from "../../../cli-plugin/errors.js";

const program = new Command("kiln").option("--builder <name>").exitOverride();
for (const register of [
  registerCreateCommand,
  registerUseCommand,
  registerLsCommand,
  registerInspectCommand,
  registerStopCommand,
  registerRmCommand,
]) {
  register(program);
}
program.parseAsync(process.argv.slice(2), { from: "user" }).then(
  () => process.exit(0),
  (err: unknown) => {
    if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : 2);
    process.stderr.write(`ERROR: ${formatError(err)}\n`);
    process.exit(exitCodeFor(err));
  },
);
