// Why a mutual-TLS engine address cannot be used, told in words: gRPC reports a refused client
// certificate only as "failed to connect before the deadline" (after retrying for the whole
// timeout). One plain TLS handshake says more, and at once: the engine's certificate is not
// trusted, or the engine hung up on this client's certificate instead of greeting it.
import { isIP } from "node:net";
import { checkServerIdentity, connect } from "node:tls";

export interface TlsProbeTarget {
  readonly host: string;
  readonly port: number;
  readonly ca: Buffer;
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly serverName?: string;
}

/** Server-certificate verification failures, by Node's error codes. */
const UNTRUSTED_SERVER =
  /^(SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?|CERT_HAS_EXPIRED|CERT_NOT_YET_VALID|ERR_TLS_CERT_ALTNAME_INVALID)$/;

/**
 * Resolves with the reason the engine at `target` cannot be used over mutual TLS, or undefined
 * when it greeted this client (its HTTP/2 preface arrived) or nothing could be learnt in time.
 */
export function probeMutualTls(target: TlsProbeTarget, timeoutMs = 5_000): Promise<string | undefined> {
  return new Promise((resolve) => {
    let handshaken = false;
    let settled = false;
    const name = target.serverName ?? target.host;
    const socket = connect({
      host: target.host,
      port: target.port,
      ca: target.ca,
      cert: target.cert,
      key: target.key,
      // SNI carries host names only; the certificate is still checked against `name`.
      ...(isIP(name) ? {} : { servername: name }),
      checkServerIdentity: (_host, cert) => checkServerIdentity(name, cert),
      ALPNProtocols: ["h2"],
    });
    const done = (reason: string | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(reason);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    timer.unref();
    const refusedClient = () =>
      done(
        "the engine refused this client's TLS certificate: it accepts only client certificates signed by the CA " +
          "it was started with (kilnd --tlscacert); check the cert and key given to the builder",
      );
    socket.once("secureConnect", () => {
      handshaken = true;
    });
    // With TLS 1.3 the engine checks the client's certificate after the client's side of the
    // handshake is over: an accepted client is greeted with the server's HTTP/2 preface, a refused
    // one is hung up on.
    socket.once("data", () => done(undefined));
    socket.once("end", () => (handshaken ? refusedClient() : done(undefined)));
    socket.once("close", () => (handshaken ? refusedClient() : done(undefined)));
    socket.once("error", (err: NodeJS.ErrnoException) => {
      const code = err.code ?? "";
      if (handshaken || /ALERT_(BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_REQUIRED)/.test(code))
        return refusedClient();
      if (UNTRUSTED_SERVER.test(code))
        return done(
          `the engine's TLS certificate is not trusted (${err.message}): it must be signed by the CA given as cacert` +
            `${code === "ERR_TLS_CERT_ALTNAME_INVALID" ? ", for the host dialled (or give servername)" : ""}`,
        );
      if (code === "ECONNREFUSED")
        return done(`nothing accepts connections at ${target.host}:${target.port}`);
      done(undefined);
    });
  });
}
