// The typed instruction model's public surface.

export { formatGoDuration, parseGoDuration } from "./duration.js";
export { expandRunMounts, parseMount } from "./mount.js";
export { parseInstruction, parseInstructions } from "./parse.js";
export * from "./types.js";

// Compile-time check that the implementations keep the signatures promised in types.ts.
import { dumpAst, dumpAstFile } from "../parser/dump.js";
import { parseDockerfile } from "../parser/parser.js";
import { expandRunMounts as _expandRunMounts, parseMount as _parseMount } from "./mount.js";
import { parseInstruction as _parseInstruction, parseInstructions as _parseInstructions } from "./parse.js";
import type {
  DumpAstFileFn,
  DumpAstFn,
  ExpandRunMountsFn,
  ParseDockerfileFn,
  ParseInstructionFn,
  ParseInstructionsFn,
  ParseMountFn,
} from "./types.js";

export const ENTRY_POINTS: {
  parseDockerfile: ParseDockerfileFn;
  dumpAst: DumpAstFn;
  dumpAstFile: DumpAstFileFn;
  parseInstruction: ParseInstructionFn;
  parseInstructions: ParseInstructionsFn;
  parseMount: ParseMountFn;
  expandRunMounts: ExpandRunMountsFn;
} = {
  parseDockerfile,
  dumpAst,
  dumpAstFile,
  parseInstruction: _parseInstruction,
  parseInstructions: _parseInstructions,
  parseMount: _parseMount,
  expandRunMounts: _expandRunMounts,
};
