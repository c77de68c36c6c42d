/**
 * GATT caching in NobleTransport ([TANDEM-GATT-16]): a phone that discovered a lock reuses its handles
 * while the lock advertises the same GATT database version, so a repeat connection sends no discovery and
 * subscribes with one Write Request; a stale cache is dropped and the next connection discovers. Real
 * noble and bleno on the virtual radio, one VirtualClock; ATT PDUs are counted on the air.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  VirtualClock,
  VirtualRadio,
  installVirtualHci,
  loadBleno,
} from '../../hardware/src/virtual-radio/index.js';
import type { AttOnAir } from '../../hardware/src/virtual-radio/index.js';
import { GATT_DATABASE_VERSION } from '../../protocol/src/gatt.js';
import { Status } from '../../protocol/src/status.js';
import { InMemoryChainRefs, LockClient } from '../../gateway/src/lock-client.js';
import { NobleTransport } from '../../gateway/src/noble-transport.js';
import type { CachedGattDatabase } from '../../gateway/src/noble-transport.js';
import { startRadioLock } from '../../firmware-sim/src/runtime/radio-lock.js';
import type { RadioLock } from '../../firmware-sim/src/runtime/radio-lock.js';
import { NOW, clockTimers, issuerProvisioning, tokenWorld } from '../../gateway/test/helpers.js';

const LOCK_ID = 'lock-7f3a';
const clock = new VirtualClock({ autoAdvance: true });
const radio = new VirtualRadio({ clock, linkLayerPayload: 27, connectionIntervalMs: 30, seed: 7 });
installVirtualHci(radio);
const bleno = loadBleno({ deviceId: 0 });
const timers = clockTimers(clock);
const world = tokenWorld();
const rider = world.rider(LOCK_ID);
const air: AttOnAir[] = [];
radio.on('att', (a) => air.push(a));
let lock: RadioLock;

const READ_BY_GROUP_TYPE = 0x10; // primary service discovery (Core Vol 3 Part F 3.4.4.9)
const READ_BY_TYPE = 0x08; // characteristic discovery, and noble's CCCD look-up (3.4.4.1)
const WRITE_REQUEST = 0x12;

/** ATT opcodes the phone sent on the last connection. */
function phoneOpcodes(): number[] {
  const last = radio.connections().at(-1)!.id;
  return air.filter((a) => a.connectionId === last && a.from === 'central').map((a) => a.opcode);
}

async function unlock(transport: NobleTransport): Promise<Status> {
  const client = new LockClient({
    transport,
    timers,
    scanTimeoutMs: 5_000,
    responseTimeoutMs: 3_000,
    chainRefs: new InMemoryChainRefs(),
  });
  const outcome = await client.unlock(LOCK_ID, { chain: rider.chain, holderKey: rider.key });
  if (lock.authority.snapshot().state !== 'locked') await lock.relock();
  return outcome.status;
}

beforeAll(async () => {
  lock = await startRadioLock({
    loadBleno: () => bleno,
    clock,
    lockId: LOCK_ID,
    ...issuerProvisioning(world, LOCK_ID, NOW),
  });
});

afterAll(async () => {
  await lock.stop();
  radio.close();
});

describe('NobleTransport GATT caching ([TANDEM-GATT-16])', () => {
  it('discovers once; the next connection sends no discovery and subscribes with one Write Request', async () => {
    const cache = new Map<string, CachedGattDatabase>();
    const phone = new NobleTransport({ binding: { kind: 'virtual', deviceId: 1 }, timers, gattCache: cache });
    try {
      const pulses = lock.pulses.length;
      expect(await unlock(phone)).toBe(Status.OK);
      expect(phoneOpcodes()).toContain(READ_BY_GROUP_TYPE);
      expect([...cache.keys()]).toEqual([`${LOCK_ID}/${radio.addressOf(0)}/v${GATT_DATABASE_VERSION}`]);

      expect(await unlock(phone)).toBe(Status.OK);
      const second = phoneOpcodes();
      expect(second).not.toContain(READ_BY_GROUP_TYPE);
      expect(second).not.toContain(READ_BY_TYPE);
      expect(second.filter((o) => o === WRITE_REQUEST)).toHaveLength(1); // the result CCCD
      expect(lock.pulses.length).toBe(pulses + 2);
    } finally {
      await phone.close();
    }
  });

  it('without a cache every connection discovers, and still subscribes without Read By Type', async () => {
    const phone = new NobleTransport({ binding: { kind: 'virtual', deviceId: 2 }, timers, gattCache: null });
    try {
      for (let i = 0; i < 2; i++) {
        expect(await unlock(phone)).toBe(Status.OK);
        const ops = phoneOpcodes();
        expect(ops).toContain(READ_BY_GROUP_TYPE);
        // Read By Type only for characteristic discovery, before the CCCD write: the CCCD is known to
        // follow the value handle, so noble's look-up is not needed.
        expect(ops.indexOf(WRITE_REQUEST)).toBeGreaterThan(0);
        expect(ops.slice(ops.indexOf(WRITE_REQUEST))).not.toContain(READ_BY_TYPE);
      }
    } finally {
      await phone.close();
    }
  });

  it('drops a stale cache whose handles get no answer; nothing moves, and the next connection discovers', async () => {
    const cache = new Map<string, CachedGattDatabase>();
    const phone = new NobleTransport({ binding: { kind: 'virtual', deviceId: 4 }, timers, gattCache: cache });
    try {
      const key = `${LOCK_ID}/${radio.addressOf(0)}/v${GATT_DATABASE_VERSION}`;
      const nowhere = { valueHandle: 0x0f00, cccdHandle: 0x0f01 };
      cache.set(key, {
        challenge: nowhere,
        request: nowhere,
        result: nowhere,
        lockInfo: nowhere,
        delivery: nowhere,
        relay: nowhere,
      } as CachedGattDatabase);
      const pulses = lock.pulses.length;
      const refused = (await unlock(phone).catch((e: unknown) => e)) as Error & { code?: string };
      expect(refused.code).toBe('ERR_GW_DISCONNECTED');
      expect(refused.message).toContain('did not answer the result CCCD write by cached handle');
      expect(lock.pulses.length).toBe(pulses);
      expect(cache.has(key)).toBe(false);

      expect(await unlock(phone)).toBe(Status.OK);
      expect(phoneOpcodes()).toContain(READ_BY_GROUP_TYPE);
      expect(lock.pulses.length).toBe(pulses + 1);
    } finally {
      await phone.close();
    }
  });
});
