// The Dockerfile syntax tree, shaped like BuildKit's parser.Node so that the AST dump and the
// instruction parsing can follow BuildKit's semantics one for one.

/** A 1-based, inclusive line range in the Dockerfile. */
export interface SourceLocation {
  readonly startLine: number;
  readonly endLine: number;
}

/** A heredoc attached to an instruction (`RUN <<EOF`, `COPY <<-"EOF" /dst`). */
export interface Heredoc {
  /** The delimiter word, quotes removed (also the file name for COPY/ADD heredocs). */
  readonly name: string;
  /** The file descriptor prefix (`3<<EOF` → 3; 0 when absent). */
  readonly fileDescriptor: number;
  /** False when any part of the delimiter was quoted: the content is then not expanded. */
  readonly expand: boolean;
  /** True for `<<-`: leading tabs are stripped from the content (and the terminator line). */
  readonly chomp: boolean;
  /** The body lines, each with its line ending, terminator excluded. */
  readonly content: string;
}

/**
 * One node of the tree. The root holds one child per instruction; an instruction node's `value` is
 * the instruction keyword as written, its arguments hang off `next` as a chain, and a nested
 * instruction (ONBUILD RUN …, HEALTHCHECK … CMD …) appears as an argument node with one child.
 */
export interface Node {
  value: string;
  next: Node | undefined;
  children: Node[];
  heredocs: Heredoc[];
  /** `json: true` when the arguments were given in JSON (exec) form. */
  attributes: Record<string, boolean>;
  /** The logical line after continuation-joining (instruction nodes only). */
  original: string;
  /** `--name=value` / `--name` flags in front of the arguments (instruction nodes only). */
  flags: string[];
  startLine: number;
  endLine: number;
  /** The comment lines directly above the instruction (without `#`). */
  prevComment: string[];
}

/** A warning the parser collected instead of printing (BuildKit's parser.Warning). */
export interface ParseWarning {
  /** The build-check rule that covers it, e.g. `NoEmptyContinuation`. */
  readonly rule: string;
  readonly short: string;
  readonly detail: string;
  readonly url: string;
  readonly location: SourceLocation;
}

/** Parser directives found at the top of the file. */
export interface ParserDirectives {
  /** `# syntax=` */
  readonly syntax?: string;
  /** `# escape=` as written (`\` or a backtick). */
  readonly escape?: string;
  /** `# check=` */
  readonly check?: string;
  /** Where each directive was found (1-based line). */
  readonly lines: Readonly<Record<string, number>>;
}

export interface ParseResult {
  /** The root node: one child per instruction. */
  readonly ast: Node;
  /** The escape token in force: `\` or a backtick. */
  readonly escapeToken: string;
  readonly warnings: readonly ParseWarning[];
  readonly directives: ParserDirectives;
  /** The file's lines (without line endings), for error rendering: `lines[n - 1]` is line n. */
  readonly lines: readonly string[];
  /** The file name used in errors (default `Dockerfile`). */
  readonly fileName: string;
}

export interface ParseOptions {
  /** Name used in errors and warnings; default `Dockerfile`. */
  readonly fileName?: string;
}

export function newNode(value = ""): Node {
  return {
    value,
    next: undefined,
    children: [],
    heredocs: [],
    attributes: {},
    original: "",
    flags: [],
    startLine: 0,
    endLine: 0,
    prevComment: [],
  };
}

/** The argument values of a node chain (`node.next…`), nested nodes flattened as BuildKit's nodeArgs. */
export function nodeArgs(node: Node): string[] {
  const result: string[] = [];
  for (let n = node.next; n; n = n.next) {
    if (n.children.length === 0) {
      result.push(n.value);
    } else if (n.children.length === 1) {
      result.push(n.children[0]!.value);
      result.push(...nodeArgs(n.children[0]!));
    }
  }
  return result;
}
