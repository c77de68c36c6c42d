/**
 * GET /api/v1/events: server-sent events (WHATWG HTML, "Server-sent events") for an owner's locks, following
 * the cloud's {@link EventFeed}: alerts, owner events, state changes and revocation acknowledgements as they are
 * stored. Each event carries `id:` (its store id, so a reconnecting client's `Last-Event-ID` resumes without a
 * gap or a duplicate), `event:` (its kind) and `data:` (JSON). A comment line every `heartbeatMs` keeps proxies
 * from closing an idle stream.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { EventFeed } from '../feed.js';
import type { ApiExtensions } from './server.js';
import { iso } from './views.js';

/** The `events` extension of the API over `feed`. */
export function eventStream(feed: EventFeed, heartbeatMs = 15_000): NonNullable<ApiExtensions['events']> {
  return (
    req: IncomingMessage,
    res: ServerResponse,
    locks: readonly string[],
    lastEventId: number | undefined,
  ) => {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write(': tandem events\nretry: 3000\n\n');
    const mine = new Set(locks);
    const stop = feed.subscribe(
      (lockId) => mine.has(lockId),
      lastEventId,
      (e) => {
        const data = JSON.stringify({
          id: e.id,
          lock: e.lockId,
          kind: e.kind,
          at: iso(e.at),
          detail: e.detail,
        });
        res.write(`id: ${e.id}\nevent: ${e.kind}\ndata: ${data}\n\n`);
      },
    );
    const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), heartbeatMs);
    heartbeat.unref();
    const end = (): void => {
      stop();
      clearInterval(heartbeat);
    };
    req.once('close', end);
    res.once('close', end);
  };
}
