// The AST dump (BuildKit's Node.Dump): one S-expression per instruction, as the conformance
// results are written. Used by tests and by `kiln debug dump-ast`.

import { readFile } from "node:fs/promises";
import { goQuote } from "../shell/quote.js";
import type { Node } from "./ast.js";
import { goToLower } from "./case.js";
import { trimSpace } from "./directives.js";
import { parseDockerfile } from "./parser.js";

/** Dumps an AST node (BuildKit's Node.Dump). */
export function dumpNode(node: Node): string {
  let str = goToLower(node.value);
  if (node.flags.length > 0) str += ` [${node.flags.map(goQuote).join(" ")}]`;
  for (const c of node.children) str += `(${dumpNode(c)})\n`;
  for (let n = node.next; n; n = n.next) {
    str += " ";
    str += n.children.length > 0 ? dumpNode(n) : goQuote(n.value);
  }
  return trimSpace(str);
}

/** Parses `text` and dumps the tree, one instruction per line, with a final newline. */
export function dumpAst(text: string, fileName?: string): string {
  const result = parseDockerfile(text, { fileName });
  return `${dumpNode(result.ast)}\n`;
}

/** Reads and dumps a Dockerfile. Throws DockerfileError for parse errors. */
export async function dumpAstFile(path: string): Promise<string> {
  return dumpAst(await readFile(path, "utf8"), path);
}
