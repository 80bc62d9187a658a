/**
 * Node weight agent, as HAProxy's agent-check: connect, read one line such as `up`, `drain`,
 * `down`, `75%` or `up 50%` (words separated by spaces or commas, `#` starts a comment).
 * Each reply is complete: a missing state means up, a missing weight means none reported.
 */
import { connect } from 'node:net';
import type { AgentReply, Checker, CheckOutcome, Target } from '../types.js';
import { attempt, errorReason, excerpt, fail } from './common.js';

/** A reply line longer than this is not an agent talking. */
const REPLY_LIMIT = 1024;

const UP = new Set(['up', 'ready']);
const DOWN = new Set(['down', 'fail', 'stopped', 'maint']);

/** The reply, or why it is not one. */
export function parseAgentReply(line: string): AgentReply | { error: string } {
  const hash = line.indexOf('#');
  const words = (hash >= 0 ? line.slice(0, hash) : line)
    .trim()
    .toLowerCase()
    .split(/[\s,]+/)
    .filter(Boolean);
  if (!words.length) return { error: 'agent: empty reply' };
  const reply: AgentReply = { down: false, drain: false };
  for (const w of words) {
    const pct = /^(\d{1,3})%$/.exec(w);
    if (pct && Number(pct[1]) <= 100) reply.weightPercent = Number(pct[1]);
    else if (DOWN.has(w)) reply.down = true;
    else if (w === 'drain') reply.drain = true;
    else if (!UP.has(w)) return { error: `agent: unrecognised reply ${excerpt(line.trim())}` };
  }
  return reply;
}

function describe(r: AgentReply): string {
  const state = r.down ? 'down' : r.drain ? 'drain' : 'up';
  return `agent: ${state}${r.weightPercent !== undefined ? ` ${r.weightPercent}%` : ''}`;
}

export class AgentChecker implements Checker {
  run(target: Target, signal: AbortSignal): Promise<CheckOutcome> {
    return attempt(signal, (done) => {
      const sock = connect({ host: target.address, port: target.port });
      let text = '';
      const finish = (): void => {
        const line = text.split('\n', 1)[0] ?? '';
        // The limit holds however the line arrives: in one chunk with its newline as well.
        if (line.length > REPLY_LIMIT) return done(fail(`agent: no line within ${REPLY_LIMIT} bytes`));
        const r = parseAgentReply(line);
        done('error' in r ? fail(r.error) : { ok: true, reason: describe(r), agent: r });
      };
      sock.setEncoding('latin1');
      sock.on('data', (s: string) => {
        text += s;
        if (text.includes('\n')) finish();
        else if (text.length > REPLY_LIMIT) done(fail(`agent: no line within ${REPLY_LIMIT} bytes`));
      });
      sock.on('end', finish);
      sock.on('error', (e) => done(fail(errorReason(e))));
      return () => sock.destroy();
    });
  }
}
