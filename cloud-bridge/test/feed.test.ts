// The owner event feed (feed.ts): live events, catch-up from the store after a Last-Event-ID with neither gap
// nor duplicate, and the events the ingestor publishes (alerts, state changes, revocation acks, offline).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { EventFeed } from '../src/feed.js';
import { Ingestor } from '../src/ingest.js';
import { openSqlStore } from '../src/store/sql-store.js';
import type { CloudEvent, CloudStore } from '../src/store/types.js';
import { FakeLock } from './fake-lock.js';

const dir = mkdtempSync(join(tmpdir(), 'tandem-feed-'));
let n = 0;
const open: CloudStore[] = [];
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
});

async function store(): Promise<CloudStore> {
  const s = await openSqlStore({ kind: 'sqlite', engine: 'wasm', path: join(dir, `f${++n}.db`) });
  open.push(s);
  return s;
}

/** Stores an event and publishes it, as the ingestor does. */
async function emit(s: CloudStore, feed: EventFeed, lockId: string, kind = 'gap'): Promise<CloudEvent> {
  const e = { lockId, kind, detail: {}, at: 1 };
  const id = await s.addEvent(e);
  const event = { id, ...e };
  feed.publish(event);
  return event;
}

/** Lets pending promise callbacks run, a bounded number of turns. */
async function turns(k = 50): Promise<void> {
  for (let i = 0; i < k; i++) await new Promise((r) => setImmediate(r));
}

describe('EventFeed', () => {
  it('delivers live events that pass the filter, and stops after unsubscribe', async () => {
    const s = await store();
    const feed = new EventFeed(s);
    const got: number[] = [];
    const stop = feed.subscribe(
      (l) => l === 'lock-a',
      undefined,
      (e) => got.push(e.id),
    );
    const a1 = await emit(s, feed, 'lock-a');
    await emit(s, feed, 'lock-b');
    const a2 = await emit(s, feed, 'lock-a');
    stop();
    stop();
    await emit(s, feed, 'lock-a');
    expect(got).toEqual([a1.id, a2.id]);
    expect(feed.size).toBe(0);
  });

  it('without a Last-Event-ID, stored history is not replayed', async () => {
    const s = await store();
    const feed = new EventFeed(s);
    await emit(s, feed, 'lock-a');
    const got: number[] = [];
    feed.subscribe(
      () => true,
      undefined,
      (e) => got.push(e.id),
    );
    await turns();
    expect(got).toEqual([]);
  });

  it('catches up from the store after the Last-Event-ID, then goes live', async () => {
    const s = await store();
    const feed = new EventFeed(s);
    const ids: number[] = [];
    for (let i = 0; i < 5; i++) ids.push((await emit(s, feed, i % 2 === 0 ? 'lock-a' : 'lock-b')).id);
    const got: number[] = [];
    feed.subscribe(
      (l) => l === 'lock-a',
      ids[1],
      (e) => got.push(e.id),
    );
    await turns();
    expect(got).toEqual([ids[2], ids[4]]);
    const live = await emit(s, feed, 'lock-a');
    expect(got).toEqual([ids[2], ids[4], live.id]);
  });

  it('events stored and published while the catch-up reads the store arrive once each, in order', async () => {
    const s = await store();
    const feed0 = new EventFeed(s);
    for (let i = 0; i < 3; i++) await emit(s, feed0, 'lock-a');
    // A store whose first read waits until the test lets it go, while new events are stored and published.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let reads = 0;
    const slow: CloudStore = Object.create(s) as CloudStore;
    slow.listEvents = async (o) => {
      if (reads++ === 0) await gate;
      return s.listEvents(o);
    };
    const feed = new EventFeed(slow);
    const got: number[] = [];
    feed.subscribe(
      () => true,
      0,
      (e) => got.push(e.id),
    );
    const during = [await emit(s, feed, 'lock-a'), await emit(s, feed, 'lock-a')];
    release();
    await turns();
    const after = await emit(s, feed, 'lock-a');
    const all = (await s.listEvents({ limit: 100 })).map((e) => e.id);
    expect(all).toContain(during[0]!.id);
    expect(got).toEqual(all);
    expect(got[got.length - 1]).toBe(after.id);
    expect(new Set(got).size).toBe(got.length);
  });

  it('an event published twice (two bridges, or publish then poll) is delivered once', async () => {
    const s = await store();
    const feed = new EventFeed(s);
    const got: number[] = [];
    feed.subscribe(
      () => true,
      undefined,
      (e) => got.push(e.id),
    );
    const e = await emit(s, feed, 'lock-a');
    feed.publish(e);
    expect(got).toEqual([e.id]);
  });

  it('poll publishes events another process stored', async () => {
    const s = await store();
    const feed = new EventFeed(s);
    const got: string[] = [];
    feed.subscribe(
      () => true,
      undefined,
      (e) => got.push(e.kind),
    );
    await s.addEvent({ lockId: 'lock-a', kind: 'fork', detail: {}, at: 1 });
    await feed.poll();
    await feed.poll();
    expect(got).toEqual(['fork']);
  });

  it('a listener that throws is dropped without disturbing the others', async () => {
    const s = await store();
    const feed = new EventFeed(s);
    const got: number[] = [];
    let calls = 0;
    feed.subscribe(
      () => true,
      undefined,
      () => {
        calls++;
        throw new Error('client went away');
      },
    );
    feed.subscribe(
      () => true,
      undefined,
      (e) => got.push(e.id),
    );
    await emit(s, feed, 'lock-a');
    await emit(s, feed, 'lock-a');
    expect(calls).toBe(1);
    expect(got).toHaveLength(2);
  });
});

describe('the ingestor publishes what it stores into the feed', () => {
  async function setup() {
    const s = await store();
    const feed = new EventFeed(s);
    const ingestor = new Ingestor({ store: s, feed, now: () => 1_800_000_000_000 });
    const lock = new FakeLock('lock-7');
    await lock.register(s);
    const got: CloudEvent[] = [];
    feed.subscribe(
      (l) => l === 'lock-7',
      undefined,
      (e) => got.push(e),
    );
    return { s, ingestor, lock, got };
  }

  it('an alert becomes an event once; its duplicate does not', async () => {
    const { s, ingestor, lock, got } = await setup();
    const alert = lock.alert('moved');
    expect((await ingestor.ingest('alert', 'lock-7', alert, 'mqtt')).outcome).toBe('stored');
    expect((await ingestor.ingest('alert', 'lock-7', alert, 'relay')).outcome).toBe('duplicate');
    expect(got.map((e) => [e.kind, e.detail.alert, e.detail.sequence])).toEqual([['alert', 'moved', 1]]);
    expect((await s.listEvents({ lockId: 'lock-7', limit: 10 })).map((e) => e.id)).toEqual([got[0]!.id]);
  });

  it('a state report is an event when the state changes, not when it repeats', async () => {
    const { ingestor, lock, got } = await setup();
    await ingestor.ingest('state', 'lock-7', lock.state(), 'mqtt');
    await ingestor.ingest('state', 'lock-7', lock.state(), 'mqtt');
    expect(got.map((e) => [e.kind, e.detail.state, e.detail.previous])).toEqual([['state', 'locked', null]]);
  });

  it('a revocation acknowledgement is an event (revocation-applied)', async () => {
    const { ingestor, lock, got } = await setup();
    await ingestor.ingest('revocation-ack', 'lock-7', lock.revocationAck(3), 'mqtt');
    expect(got.map((e) => [e.kind, e.detail.version])).toEqual([['revocation-applied', 3]]);
  });

  it("the broker's empty last will is an offline event, not a malformed state (TANDEM-MQTT-WILL)", async () => {
    const { ingestor, got } = await setup();
    expect((await ingestor.ingest('state', 'lock-7', new Uint8Array(0), 'mqtt')).outcome).toBe('stored');
    expect(got.map((e) => e.kind)).toEqual(['offline']);
  });

  it('a forged alert is a forgery event and no alert event', async () => {
    const { ingestor, lock, got } = await setup();
    const thief = new FakeLock('lock-7');
    const r = await ingestor.ingest('alert', 'lock-7', lock.alert('moved', thief.deviceKey), 'mqtt');
    expect(r).toMatchObject({ outcome: 'refused', flagged: 'forgery' });
    expect(got.map((e) => e.kind)).toEqual(['forgery']);
  });
});
