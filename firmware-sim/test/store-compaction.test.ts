// Compaction is amortised: when the records a store must keep alone exceed its compaction bound, it does
// not rewrite the whole file on every write (that cost ~12 ms and over 1 MB of SD card writes per request
// at 5,000 audit records before the fix). Counted in filesystem operations, not time.
import { describe, expect, it } from 'vitest';
import { AuditLog } from '../src/store/audit-log.js';
import { CrashingStoreFs } from '../src/store/crashing-store-fs.js';
import { Outbox } from '../src/store/outbox.js';
import { UseCounterStore } from '../src/store/use-counter-store.js';

const DIR = '/data';

// Filesystem operations per write, averaged over `n` writes made after the store holds `kept` records.
async function opsPerWrite(
  fs: CrashingStoreFs,
  write: (i: number) => Promise<unknown>,
  kept: number,
  n: number,
) {
  for (let i = 0; i < kept; i++) await write(i);
  const before = fs.operationCount;
  for (let i = kept; i < kept + n; i++) await write(i);
  return (fs.operationCount - before) / n;
}

describe('amortised compaction', () => {
  it('AuditLog: keeping more records than the bound holds does not rewrite the log on every append', async () => {
    const small = new CrashingStoreFs();
    const fresh = await AuditLog.open(small, DIR, { compactAtBytes: 1 << 30 });
    const plain = await opsPerWrite(small, () => fresh.append(new Uint8Array(210)), 0, 50);

    const fs = new CrashingStoreFs();
    const log = await AuditLog.open(fs, DIR, {
      compactAtBytes: 8 * 1024,
      maxRecords: 5000,
    });
    // 600 records of ~230 bytes (a signed audit record's size): 140 KB kept, far above the 8 KB bound.
    const ops = await opsPerWrite(fs, () => log.append(new Uint8Array(210)), 600, 200);
    expect(ops).toBeLessThan(plain * 1.5);
    expect(log.records()).toHaveLength(800);
  });

  it('Outbox: many waiting messages do not make every enqueue a rewrite', async () => {
    const small = new CrashingStoreFs();
    const fresh = await Outbox.open(small, DIR, { compactAtBytes: 1 << 30 });
    const plain = await opsPerWrite(small, () => fresh.enqueue('audit', new Uint8Array(200)), 0, 50);
    const fs = new CrashingStoreFs();
    const outbox = await Outbox.open(fs, DIR, { compactAtBytes: 8 * 1024 });
    const ops = await opsPerWrite(fs, () => outbox.enqueue('audit', new Uint8Array(200)), 400, 200);
    expect(ops).toBeLessThan(plain * 1.5);
    expect(outbox.size).toBe(600);
  });

  it('UseCounterStore: many live counters do not make every increment a rewrite', async () => {
    const id = (i: number) => Uint8Array.from([i >> 8, i & 0xff, 1, 2, 3, 4, 5, 6]);
    const small = new CrashingStoreFs();
    const fresh = await UseCounterStore.open(small, DIR, { compactAtBytes: 1 << 30 });
    const plain = await opsPerWrite(small, (i) => fresh.increment(id(i), 2_000_000_000), 0, 50);
    const fs = new CrashingStoreFs();
    const counters = await UseCounterStore.open(fs, DIR, { compactAtBytes: 2 * 1024 });
    const ops = await opsPerWrite(fs, (i) => counters.increment(id(i), 2_000_000_000), 400, 200);
    expect(ops).toBeLessThan(plain * 1.5);
    expect(counters.size).toBe(600);
  });
});
