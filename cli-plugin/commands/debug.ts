// `kiln debug …`: developer views of what the frontend makes of a Dockerfile.
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import type { Command } from "commander";
import { readBuildFiles } from "../../src/client/context-source.js";
import { runDockerfileFrontend } from "../../src/engine/dockerfile-build.js";
import { ImageSources } from "../../src/engine/image-sources.js";
import { dumpAst } from "../../src/frontend/dockerfile/parser/dump.js";
import { DockerfileError } from "../../src/frontend/dockerfile/parser/errors.js";
import { dumpLlb } from "../../src/llb/dump.js";
import { hostPlatform } from "../../src/oci/platform.js";
import { BuildFailedError } from "../errors.js";
import { emptyRawFlags, parseBuildFlags, type RawBuildFlags } from "../options/build-flags.js";

const collect = (value: string, previous: string[]) => [...previous, value];

export function registerDebugCommand(program: Command): void {
  const debug = program.command("debug").description("inspect what Kiln makes of a Dockerfile");
  debug
    .command("dump-ast")
    .description(
      "print a Dockerfile's syntax tree, one S-expression per instruction (BuildKit's dump format)",
    )
    .argument("[file]", "the Dockerfile; - or none reads standard input")
    .action(async (file?: string) => {
      const name = file && file !== "-" ? file : "Dockerfile";
      const text = file && file !== "-" ? await readFile(file, "utf8") : await readStdin();
      try {
        process.stdout.write(dumpAst(text, name));
      } catch (err) {
        if (err instanceof DockerfileError) throw new BuildFailedError(err.format());
        throw err;
      }
    });
  debug
    .command("dump-llb")
    .description("print the LLB definition a build would solve, as JSON (one per platform)")
    .argument("<context>", "the build context directory")
    .option("-f, --file <path>", "the Dockerfile")
    .option("--target <stage>", "the stage to build")
    .option("--platform <platforms>", "target platforms", collect, [])
    .option("--build-arg <key=value>", "build-time variables", collect, [])
    .option("--build-context <name=value>", "additional build contexts", collect, [])
    .action(
      async (
        context: string,
        flags: Pick<RawBuildFlags, "file" | "target" | "platform" | "buildArg" | "buildContext">,
      ) => {
        const raw: RawBuildFlags = { ...emptyRawFlags(), ...flags };
        const { request } = parseBuildFlags(context, raw, process.env);
        const req = await readBuildFiles(request, resolve(context));
        const images = new ImageSources({ insecureRegistries: [] });
        try {
          const fe = await runDockerfileFrontend(req, {
            resolveImage: (ref, p) => images.resolveConfig(ref, p, false),
            buildPlatform: hostPlatform(),
          });
          if (fe.kind !== "builds") return;
          for (const b of fe.builds) process.stdout.write(`${dumpLlb(b.definition)}\n`);
        } catch (err) {
          if (err instanceof DockerfileError) throw new BuildFailedError(err.format());
          throw err;
        } finally {
          images.registry.close();
        }
      },
    );
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}
