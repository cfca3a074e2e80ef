// Source-op attribute keys, spelled as BuildKit's solver/pb/attr.go spells them, so that a
// definition means the same thing to every part of Kiln (and reads familiar to BuildKit users).

export const LocalAttr = {
  sessionId: "local.session",
  uniqueId: "local.unique",
  /** JSON array of patterns: only matching paths are transferred. */
  includePatterns: "local.includepattern",
  /** JSON array of paths the transfer follows (the Dockerfile's COPY sources): BuildKit's followpaths. */
  followPaths: "local.followpaths",
  /** JSON array of .dockerignore patterns. */
  excludePatterns: "local.excludepatterns",
  sharedKeyHint: "local.sharedkeyhint",
  differ: "local.differ",
} as const;

export const HttpAttr = {
  checksum: "http.checksum",
  filename: "http.filename",
  perm: "http.perm",
  uid: "http.uid",
  gid: "http.gid",
  authHeaderSecret: "http.authheadersecret",
} as const;

export const GitAttr = {
  keepGitDir: "git.keepgitdir",
  fullUrl: "git.fullurl",
  authHeaderSecret: "git.authheadersecret",
  authTokenSecret: "git.authtokensecret",
  knownSshHosts: "git.knownsshhosts",
  mountSshSock: "git.mountsshsock",
  checksum: "git.checksum",
  skipSubmodules: "git.skipsubmodules",
  mtime: "git.mtime",
  fetchByCommit: "git.fetchbycommit",
} as const;

export const ImageAttr = {
  /** `default` | `pull` | `local`. */
  resolveMode: "image.resolvemode",
  recordType: "image.recordtype",
  layerLimit: "image.layerlimit",
  checksum: "image.checksum",
} as const;

export const OciLayoutAttr = {
  sessionId: "oci.session",
  storeId: "oci.store",
  layerLimit: "oci.layerlimit",
} as const;

/** The default secret names a git source uses for HTTP auth (BuildKit's GIT_AUTH_*). */
export const GIT_AUTH_HEADER_KEY = "GIT_AUTH_HEADER";
export const GIT_AUTH_TOKEN_KEY = "GIT_AUTH_TOKEN";
