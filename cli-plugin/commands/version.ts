// `kiln version`: the package, version and commit, as `buildx version` prints them.
import type { Command } from "commander";
import { KILN_COMMIT, KILN_PACKAGE, KILN_VERSION } from "../../src/version.js";

export function versionLine(): string {
  return `${KILN_PACKAGE} v${KILN_VERSION} ${KILN_COMMIT}`;
}

export function registerVersionCommand(program: Command): void {
  program
    .command("version")
    .description("show Kiln's version and the commit it was built from")
    .action(() => {
      process.stdout.write(`${versionLine()}\n`);
    });
}
