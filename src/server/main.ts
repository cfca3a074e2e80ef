// Entry point of kilnd, the engine daemon. The API server arrives with the engine core.
import { KILN_COMMIT, KILN_VERSION } from "../version.js";

process.stdout.write(`kilnd v${KILN_VERSION} ${KILN_COMMIT}\n`);
