// A build that a remote engine ended with an error: the engine's message as it wrote it, and
// whether the build itself failed, was cancelled, or the engine/API failed around it.
export type RemoteBuildErrorKind = "build-failed" | "cancelled" | "internal";

export class RemoteBuildError extends Error {
  override readonly name = "RemoteBuildError";

  constructor(
    readonly kind: RemoteBuildErrorKind,
    message: string,
    /** The error's class on the engine side (ExecFailedError, DockerfileError, …), when known. */
    readonly engineErrorName?: string,
  ) {
    super(message);
  }
}
