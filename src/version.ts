// Kiln's version and the commit it was built from, stamped in by the bundler.
declare const __KILN_VERSION__: string | undefined;
declare const __KILN_COMMIT__: string | undefined;

export const KILN_PACKAGE = "github.com/kiln-build/kiln";
export const KILN_VERSION = typeof __KILN_VERSION__ === "string" ? __KILN_VERSION__ : "0.1.0-dev";
export const KILN_COMMIT = typeof __KILN_COMMIT__ === "string" ? __KILN_COMMIT__ : "unbundled";
