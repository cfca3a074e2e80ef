// The Dockerfile parser's public surface: text → AST, the AST dump, directives and errors.
export * from "./ast.js";
export { type Directive, DirectiveParser, detectDirective } from "./directives.js";
export { dumpAst, dumpAstFile, dumpNode } from "./dump.js";
export { DockerfileError, type DockerfileErrorInit, suggestClosest } from "./errors.js";
export { chompHeredocContent, heredocsFromLine, mustParseHeredoc, parseHeredoc } from "./heredoc.js";
export { DEFAULT_ESCAPE_TOKEN, parseDockerfile } from "./parser.js";
