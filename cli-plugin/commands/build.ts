// `kiln build`: Buildx's flags, parsed into a BuildRequest and run on the selected builder.
import { writeFile } from "node:fs/promises";
import { type Command, Option } from "commander";
import { refuseMultiPlatformLoad } from "../../src/client/multi-node.js";
import { runBuild } from "../../src/client/run-build.js";
import { builderFlag, withBuildNodes } from "../builder-engine.js";
import { BuildFailedError, UsageError } from "../errors.js";
import { parseBuildFlags, type RawBuildFlags } from "../options/build-flags.js";
import { createProgressRenderer } from "../progress/renderer.js";

const collect = (value: string, previous: string[]) => [...previous, value];

export function registerBuildCommand(program: Command): void {
  program
    .command("build")
    .alias("b")
    .description("Start a build")
    .argument(
      "<context>",
      "build context: a directory, - (a tar archive or a Dockerfile on stdin) or a git URL (https://host/repo.git#ref:subdir, git@host:repo.git)",
    )
    .option("-f, --file <path>", 'name of the Dockerfile (default: "PATH/Dockerfile")')
    .option("-t, --tag <name>", 'image name and optionally a tag ("name:tag")', collect, [])
    .option("--build-arg <key=value>", "set build-time variables", collect, [])
    .option("--build-context <name=value>", "additional build contexts (e.g., name=path)", collect, [])
    .option("--target <stage>", "set the target build stage to build")
    .option("--platform <platforms>", "set target platform for build", collect, [])
    .option("-o, --output <spec>", 'output destination (format: "type=local,dest=path")', collect, [])
    .option("--push", 'shorthand for "--output=type=registry"')
    .option("--load", 'shorthand for "--output=type=docker"')
    .option("--no-cache", "do not use cache when building the image")
    // Commander reads any --no-X as the negation of X; an argument parser keeps the values (as `cacheFilter`).
    .addOption(
      new Option("--no-cache-filter <stages>", "do not cache specified stages")
        .default([])
        .argParser(collect),
    )
    .option("--pull", "always attempt to pull all referenced images")
    .option("--label <key=value>", "set metadata for an image", collect, [])
    .option("--network <mode>", 'set the networking mode for the "RUN" instructions during build')
    .option("--add-host <host:ip>", "add a custom host-to-IP mapping", collect, [])
    .option(
      "--allow <entitlement>",
      'allow extra privileged entitlement (e.g., "network.host", "security.insecure")',
      collect,
      [],
    )
    .option(
      "--secret <spec>",
      'secret to expose to the build (format: "id=mysecret[,src=/local/secret]")',
      collect,
      [],
    )
    .option(
      "--ssh <spec>",
      'SSH agent socket or keys to expose to the build (format: "default|<id>[=<socket>|<key>[,<key>]]")',
      collect,
      [],
    )
    .option(
      "--cache-from <spec>",
      'external cache sources (e.g., "user/app:cache", "type=local,src=path/to/dir")',
      collect,
      [],
    )
    .option(
      "--cache-to <spec>",
      'cache export destinations (e.g., "user/app:cache", "type=local,dest=path/to/dir")',
      collect,
      [],
    )
    .addOption(
      new Option("--progress <mode>", "set type of progress output").choices([
        "auto",
        "tty",
        "plain",
        "rawjson",
        "quiet",
        "none",
      ]),
    )
    .option("-q, --quiet", "suppress the build output and print image ID on success")
    .option("--metadata-file <file>", "write build result metadata to a file")
    .option("--iidfile <file>", "write the image ID to a file")
    .option("--call <method>", 'set method for evaluating build ("check", "outline", "targets")')
    .option("--check", 'shorthand for "--call=check"')
    .option("--annotation <spec>", "add annotation to the image", collect, [])
    .option("--shm-size <bytes>", "shared memory size for build containers")
    .option("--ulimit <spec>", "ulimit options", collect, [])
    .option("--cgroup-parent <parent>", 'set the parent cgroup for the "RUN" instructions during build')
    .action(async (context: string, flags: RawBuildFlags & { cacheFilter: string[] }, cmd: Command) => {
      const { cacheFilter, ...rest } = flags;
      const { request, client } = parseBuildFlags(
        context,
        { ...rest, noCacheFilter: cacheFilter },
        process.env,
      );
      try {
        refuseMultiPlatformLoad(request);
      } catch (err) {
        // Refused before any builder is opened: the flags ask for what cannot be, a usage error.
        throw new UsageError((err as Error).message);
      }
      const renderer = await createProgressRenderer(client.progress, process.stderr);
      const ac = new AbortController();
      const onSigint = () => ac.abort(new Error("build cancelled"));
      process.once("SIGINT", onSigint);
      try {
        const outcome = await runBuild(request, {
          onProgress: (e) => renderer.handle(e),
          signal: ac.signal,
          stdout: process.stdout,
          nodes: (req, fn) => withBuildNodes(builderFlag(cmd), process.env, req.platforms, fn),
        });
        await renderer.close();
        for (const w of outcome.warnings) process.stderr.write(`WARNING: ${w}\n`);
        if (outcome.report) process.stdout.write(outcome.report);
        if (client.metadataFile)
          await writeFile(client.metadataFile, `${JSON.stringify(outcome.metadata, null, 2)}\n`);
        if (client.iidfile && outcome.imageId) await writeFile(client.iidfile, outcome.imageId);
        if (client.quiet && outcome.imageId) process.stdout.write(`${outcome.imageId}\n`);
        if (outcome.failed) throw new BuildFailedError(outcome.failed);
      } catch (err) {
        await renderer.close();
        throw err;
      } finally {
        process.off("SIGINT", onSigint);
      }
    });
}
