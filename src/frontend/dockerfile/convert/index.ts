// The Dockerfile → LLB converter's public surface.
export { dumpLlb } from "../../../llb/dump.js";
export { convertDockerfile } from "./convert.js";
export {
  listTargets,
  type Outline,
  type OutlineArg,
  type OutlineSecret,
  outline,
  type Target,
} from "./outline.js";
export type {
  ConvertOptions,
  ConvertResult,
  NamedContextSpec,
  ResolvedImage,
  ResolveImageFn,
  StageInfo,
} from "./types.js";
