/**
 * The dashboard's live feed: one hub per dashboard that listens to every simulated lock (state, accelerometer,
 * theft detector) and polls the cloud store (audit records, alerts, owner events) only while at least one
 * page is connected, and hands each message to every connected page as a server-sent event (HTML Living
 * Standard §9.2). Accelerometer samples (100 Hz per lock) are batched so a page gets a few events a second.
 */
import type { ServerResponse } from 'node:http';
import { Status, decodeAlert, decodeAuditRecord } from '../../../protocol/src/index.js';
import type { CloudEvent, CloudStore, StoredRecord } from '../store/types.js';
import type { AccelSample, SimLockControl, TheftMark } from './sim-control.js';

/** One message of the feed: an SSE `event:` name and its JSON `data:`. */
export interface FeedMessage {
  readonly event: 'snapshot' | 'accel' | 'theft' | 'record' | 'cloud-event';
  readonly data: unknown;
}

/** A record the cloud holds, decoded for a person (the signature was checked at ingestion). */
export interface RecordView {
  readonly lockId: string;
  readonly epoch: number;
  readonly sequence: number;
  readonly kind: 'alert' | 'audit';
  /** Lock time, Unix seconds. */
  readonly time: number;
  readonly receivedAt: number;
  readonly via: string;
  /** Audit: the event name (`unlock`, `refused`, ...); alert: its kind (`tamper`, `moved`, ...). */
  readonly what: string;
  readonly status?: string;
  readonly rider?: string;
  readonly detail: Record<string, unknown>;
}

/** Decodes a stored record for display; undecodable bytes (not expected: they were verified) say so. */
export function recordView(r: StoredRecord): RecordView {
  const base = {
    lockId: r.lockId,
    epoch: r.epoch,
    sequence: r.sequence,
    kind: r.kind,
    time: r.time,
    receivedAt: r.receivedAt,
    via: r.via,
  };
  try {
    if (r.kind === 'alert') {
      const { alert } = decodeAlert(r.bytes);
      return { ...base, what: alert.kind, detail: Object.fromEntries(alert.detail) };
    }
    const { record } = decodeAuditRecord(r.bytes);
    return {
      ...base,
      what: record.event,
      status: Status[record.status] ?? String(record.status),
      ...(record.rider === undefined ? {} : { rider: record.rider }),
      detail: Object.fromEntries(record.detail),
    };
  } catch (e) {
    return { ...base, what: 'undecodable', detail: { error: (e as Error).message } };
  }
}

/** Options of {@link FeedHub}. */
export interface FeedOptions {
  readonly locks: readonly SimLockControl[];
  readonly store: CloudStore;
  /** How often the store is polled for new records and events (default 500 ms). */
  readonly pollMs?: number;
  /** How long accelerometer samples are gathered into one event (default 100 ms). */
  readonly accelBatchMs?: number;
  /** How many records and events a page gets when it connects (default 50). */
  readonly backlog?: number;
}

/** Fans the feeds of the simulated locks and the store out to connected pages. */
export class FeedHub {
  readonly #clients = new Set<ServerResponse>();
  readonly #stops: (() => void)[] = [];
  readonly #accel = new Map<string, AccelSample[]>();
  readonly #seen = new Map<string, { epoch: number; sequence: number }>();
  #lastEvent = 0;
  #primed: Promise<void> | undefined;
  #polling = false;
  #nextId = 1;

  constructor(private readonly o: FeedOptions) {}

  /** Connected pages. */
  get size(): number {
    return this.#clients.size;
  }

  /** Starts an SSE stream on `res`: the current snapshots and the recent backlog first, then live messages. */
  async attach(res: ServerResponse): Promise<void> {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
    });
    // The lines below may be dropped by a proxy; the comment makes the headers leave at once.
    res.write(': tandem dashboard feed\nretry: 1000\n\n');
    if (this.#clients.size === 0) this.#start();
    this.#clients.add(res);
    res.on('close', () => {
      this.#clients.delete(res);
      if (this.#clients.size === 0) this.#stop();
    });
    for (const lock of this.o.locks) this.#send(res, { event: 'snapshot', data: lock.snapshot() });
    await this.#primed;
    const backlog = this.o.backlog ?? 50;
    for (const lock of this.o.locks) {
      const recent = await this.#recentRecords(lock.lockId, backlog);
      for (const r of recent) this.#send(res, { event: 'record', data: recordView(r) });
    }
    const events = await this.o.store.listEvents({
      after: Math.max(0, this.#lastEvent - backlog),
      limit: backlog,
    });
    for (const e of events.filter((e) => this.#mine(e))) this.#send(res, { event: 'cloud-event', data: e });
  }

  /** Ends every stream (the listener is closing). */
  close(): void {
    for (const res of [...this.#clients]) res.end();
    this.#clients.clear();
    this.#stop();
  }

  #mine(e: CloudEvent): boolean {
    return this.o.locks.some((l) => l.lockId === e.lockId);
  }

  async #recentRecords(lockId: string, limit: number): Promise<StoredRecord[]> {
    const epochs = await this.o.store.listEpochs(lockId);
    const last = epochs[epochs.length - 1];
    if (!last) return [];
    const seen = this.#seen.get(lockId);
    const through = seen?.epoch === last.epoch ? seen.sequence : Number.MAX_SAFE_INTEGER;
    const from = Math.max(0, through - limit);
    return (await this.o.store.recordsAfter(lockId, last.epoch, from, limit)).filter(
      (r) => r.sequence <= through,
    );
  }

  #send(res: ServerResponse, m: FeedMessage): void {
    res.write(`id: ${this.#nextId++}\nevent: ${m.event}\ndata: ${JSON.stringify(m.data)}\n\n`);
  }

  #broadcast(m: FeedMessage): void {
    for (const res of this.#clients) this.#send(res, m);
  }

  #start(): void {
    for (const lock of this.o.locks) {
      this.#stops.push(lock.onChange((s) => this.#broadcast({ event: 'snapshot', data: s })));
      this.#stops.push(
        lock.onAccel((s) => {
          const batch = this.#accel.get(lock.lockId);
          if (batch) batch.push(s);
          else this.#accel.set(lock.lockId, [s]);
        }),
      );
      this.#stops.push(
        lock.onTheft((m: TheftMark) =>
          this.#broadcast({ event: 'theft', data: { lockId: lock.lockId, ...m } }),
        ),
      );
    }
    // What the store already held when the first page connected is backlog, not news.
    this.#primed = this.#prime();
    const flush = setInterval(() => this.#flushAccel(), this.o.accelBatchMs ?? 100);
    flush.unref();
    this.#stops.push(() => clearInterval(flush));
    const poll = setInterval(() => void this.#poll(), this.o.pollMs ?? 500);
    poll.unref();
    this.#stops.push(() => clearInterval(poll));
  }

  #stop(): void {
    for (const s of this.#stops.splice(0)) s();
    this.#accel.clear();
  }

  async #prime(): Promise<void> {
    for (;;) {
      const batch = await this.o.store.listEvents({ after: this.#lastEvent, limit: 500 });
      if (batch.length === 0) break;
      this.#lastEvent = batch[batch.length - 1]!.id;
    }
    for (const lock of this.o.locks) {
      const epochs = await this.o.store.listEpochs(lock.lockId);
      const last = epochs[epochs.length - 1];
      if (!last) continue;
      let sequence = 0;
      for (;;) {
        const batch = await this.o.store.recordsAfter(lock.lockId, last.epoch, sequence, 500);
        if (batch.length === 0) break;
        sequence = batch[batch.length - 1]!.sequence;
      }
      this.#seen.set(lock.lockId, { epoch: last.epoch, sequence });
    }
  }

  #flushAccel(): void {
    for (const [lockId, samples] of this.#accel) {
      if (samples.length > 0) this.#broadcast({ event: 'accel', data: { lockId, samples } });
    }
    this.#accel.clear();
  }

  async #poll(): Promise<void> {
    if (this.#polling) return; // a slow store: one poll at a time
    this.#polling = true;
    try {
      await this.#primed;
      const events = await this.o.store.listEvents({ after: this.#lastEvent, limit: 100 });
      for (const e of events) {
        this.#lastEvent = e.id;
        if (this.#mine(e)) this.#broadcast({ event: 'cloud-event', data: e });
      }
      for (const lock of this.o.locks) {
        const epochs = await this.o.store.listEpochs(lock.lockId);
        const last = epochs[epochs.length - 1];
        if (!last) continue;
        const seen = this.#seen.get(lock.lockId);
        // A new epoch (the lock lost its outbox, [TANDEM-MQTT-11]) starts from its first record.
        const after = seen?.epoch === last.epoch ? seen.sequence : 0;
        const records = await this.o.store.recordsAfter(lock.lockId, last.epoch, after, 100);
        for (const r of records) this.#broadcast({ event: 'record', data: recordView(r) });
        const top = records[records.length - 1];
        this.#seen.set(lock.lockId, { epoch: last.epoch, sequence: top?.sequence ?? after });
      }
    } catch {
      // The store is closing or busy: the next poll tries again; pages keep what they have.
    } finally {
      this.#polling = false;
    }
  }
}
