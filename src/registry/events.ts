// What the registry client reports while it works: retries, blob transfers (with byte counts),
// mounts and manifest pushes, for progress displays and for tests that check what went on the wire.
import type { Digest } from "../oci/digest.js";

export type RegistryEvent =
  | {
      readonly type: "retry";
      readonly registry: string;
      readonly method: string;
      readonly url: string;
      readonly attempt: number;
      readonly reason: string;
      readonly delayMs: number;
    }
  /** A blob push found the blob already in the repository (HEAD 200). */
  | { readonly type: "blob-exists"; readonly ref: string; readonly digest: Digest; readonly size: number }
  /** A cross-repository mount request and the registry's answer (201 mounted, 202 not mounted). */
  | {
      readonly type: "blob-mount";
      readonly ref: string;
      readonly digest: Digest;
      readonly from: string;
      readonly status: number;
      readonly mounted: boolean;
    }
  | {
      readonly type: "blob-upload-start";
      readonly ref: string;
      readonly digest: Digest;
      readonly size: number;
      readonly chunked: boolean;
    }
  /** Cumulative bytes sent (push) or received (pull) for one blob. */
  | {
      readonly type: "blob-progress";
      readonly direction: "push" | "pull";
      readonly ref: string;
      readonly digest: Digest;
      readonly bytes: number;
      readonly total: number;
    }
  /** One PATCH of a chunked upload, with the registry's answer. */
  | {
      readonly type: "blob-chunk";
      readonly ref: string;
      readonly digest: Digest;
      readonly start: number;
      readonly end: number;
      readonly status: number;
    }
  | { readonly type: "blob-pushed"; readonly ref: string; readonly digest: Digest; readonly size: number }
  | { readonly type: "blob-pulled"; readonly ref: string; readonly digest: Digest; readonly size: number }
  | {
      readonly type: "manifest-pushed";
      readonly ref: string;
      readonly digest: Digest;
      readonly mediaType: string;
      readonly reference: string;
    };

export type RegistryEventListener = (event: RegistryEvent) => void;

/** A listener that tells both the client's listeners and a call's own. */
export function bothListeners(
  clientWide: RegistryEventListener,
  perCall: RegistryEventListener | undefined,
): RegistryEventListener {
  return perCall
    ? (event) => {
        clientWide(event);
        perCall(event);
      }
    : clientWide;
}
