/** TCP connect check: up when the three-way handshake completes. */
import { connect } from 'node:net';
import type { Checker, CheckOutcome, Target } from '../types.js';
import { attempt, errorReason, fail } from './common.js';

const CONNECTED: CheckOutcome = { ok: true, reason: 'connected' };
const ignore = (): void => undefined;

export class TcpChecker implements Checker {
  run(target: Target, signal: AbortSignal): Promise<CheckOutcome> {
    return attempt(signal, (done) => {
      const sock = connect({ host: target.address, port: target.port });
      let connected = false;
      const onConnect = (): void => {
        connected = true;
        done(CONNECTED);
      };
      const onError = (e: Error): void => done(fail(errorReason(e)));
      sock.once('connect', onConnect);
      sock.on('error', onError);
      return () => {
        // Node keeps a closed socket reachable until the next full garbage collection; without
        // our listeners it does not keep this check's closures and promise alive with it.
        sock.off('connect', onConnect);
        sock.off('error', onError);
        // A late error must still find a listener, or it would be thrown.
        sock.on('error', ignore);
        // RST instead of FIN: at thousands of checks per second, FIN would leave as many
        // sockets in TIME_WAIT on the director (HAProxy's checks do the same). A socket still
        // connecting cannot be reset (node would wait for the handshake), so it is destroyed.
        if (connected && !sock.destroyed) sock.resetAndDestroy();
        else sock.destroy();
      };
    });
  }
}
