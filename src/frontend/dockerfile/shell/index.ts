// The shell-word lexer's public surface.
export {
  type EnvGetter,
  emptyEnv,
  envsFromRecord,
  envsFromSlice,
  type ProcessWordResult,
  ShellLex,
  ShellLexError,
} from "./lex.js";
export { goQuote } from "./quote.js";
