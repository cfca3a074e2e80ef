// Assembles the docker-container driver's engine image from this checkout by hand (the driver
// does the same on bootstrap when no `image=` option is given) and prints its tag:
//   npm run build && node --import tsx scripts/engine-image/build.ts [DOCKER_CONTEXT_OR_HOST]
import { dockerClient, resolveDockerEndpoint } from "../../drivers/docker-api/docker-endpoint.js";
import { ensureEngineImage } from "../../drivers/docker-container/engine-image.js";

const docker = dockerClient(resolveDockerEndpoint(process.argv[2]));
ensureEngineImage(docker, (line) => process.stderr.write(`${line}\n`)).then(
  (tag) => process.stdout.write(`${tag}\n`),
  (err: Error) => {
    process.stderr.write(`ERROR: ${err.message}\n`);
    process.exitCode = 1;
  },
);
