/**
 * Shared by gateway/'s tests and the ble bench: a token world (issuer, riders, tokens), timers on a radio
 * clock, and a transport decorator that records what crosses it.
 */
import { randomBytes } from 'node:crypto';
import type { RadioClock, RadioTimer } from '../../hardware/src/virtual-radio/index.js';
import type { TrustAnchor } from '../../protocol/src/chain.js';
import type { CharacteristicName } from '../../protocol/src/gatt.js';
import type { PrivateKey } from '../../protocol/src/keys.js';
import { generateKeyPair } from '../../protocol/src/keys.js';
import type { MintClaims } from '../../protocol/src/token.js';
import { mintToken } from '../../protocol/src/token.js';
import { encodeTimeBeacon } from '../../protocol/src/time-beacon.js';
import type { Timers } from '../src/lock-client.js';
import type { ConnectOptions, FoundLock, LockLink, LockTransport, ScanOptions } from '../src/transport.js';

/** The lock's "now", Unix seconds (2026-11-18). */
export const NOW = 1_795_000_000;

/** Issuer and anchors of one test world. */
export interface TokenWorld {
  readonly issuer: PrivateKey;
  readonly kid: Uint8Array;
  readonly anchors: (kid: Uint8Array) => TrustAnchor | undefined;
  /** A fresh rider key and a one-token chain for `lockId` bound to it. */
  rider(lockId: string, over?: Partial<MintClaims>): { key: PrivateKey; chain: Uint8Array[] };
}

export function tokenWorld(): TokenWorld {
  const issuer = generateKeyPair('EdDSA');
  const kid = Uint8Array.of(0x01);
  const anchor: TrustAnchor = { kid, key: issuer.publicKey, role: 'issuer', name: 'tandem' };
  return {
    issuer,
    kid,
    anchors: (k) => (Buffer.compare(Buffer.from(k), Buffer.from(kid)) === 0 ? anchor : undefined),
    rider(lockId, over = {}) {
      const key = generateKeyPair('ES256');
      const claims: MintClaims = {
        iss: 'tandem',
        sub: 'adam',
        aud: lockId,
        iat: NOW - 60,
        nbf: NOW - 60,
        exp: NOW + 7 * 86_400,
        cti: randomBytes(12),
        cnf: key.publicKey,
        scope: ['unlock', 'lock', 'status'],
        rider: 'bianca',
        ...over,
      };
      return { key, chain: [mintToken(claims, issuer, kid)] };
    },
  };
}

/**
 * How this world's issuer provisions a simulated lock (`startRadioLock` in firmware-sim): its trust anchor,
 * and the time beacon a phone would relay for the lock's first nonce (SPEC §7) so that the lock knows `now`.
 */
export function issuerProvisioning(world: TokenWorld, lockId: string, now: number = NOW) {
  return {
    anchors: [
      {
        kid: world.kid,
        alg: world.issuer.alg,
        key: world.issuer.publicKey.raw,
        role: 'issuer' as const,
        name: 'tandem',
      },
    ],
    timeBeacon: (nonce: Uint8Array) =>
      encodeTimeBeacon({ time: now, nonce, lockId, accuracy: 2 }, world.issuer, world.kid),
  };
}

/** Client timers on a radio clock: timeouts then run on modelled time, deterministically. */
export function clockTimers(clock: RadioClock): Timers {
  return {
    setTimeout: (fn, ms) => clock.setTimeout(fn, ms),
    clearTimeout: (h) => {
      if (h !== undefined) clock.clearTimeout(h as RadioTimer);
    },
  };
}

/** What a {@link RecordingTransport} saw. */
export interface TransportRecord {
  scans: number;
  connects: number;
  subscribes: number;
  reads: number;
  writesWithoutResponse: number;
  writesWithResponse: number;
  /** Notifications received. */
  notifications: number;
  /**
   * GATT round trips: each subscription (CCCD write), read and write with response, plus each run of
   * writes without response that a notification answers (the request/result exchange of flow step 3).
   */
  roundTrips: number;
  /** Writes per characteristic, in order. */
  writes: Array<{ name: CharacteristicName; value: Uint8Array }>;
}

export function emptyRecord(): TransportRecord {
  return {
    scans: 0,
    connects: 0,
    subscribes: 0,
    reads: 0,
    writesWithoutResponse: 0,
    writesWithResponse: 0,
    notifications: 0,
    roundTrips: 0,
    writes: [],
  };
}

/**
 * Wraps a transport and counts what crosses it (the bench's round trips and writes come from here, not
 * from guesses). `afterWrite` lets a test act between frames (take the phone out of range).
 */
export class RecordingTransport implements LockTransport {
  record: TransportRecord = emptyRecord();
  afterWrite: ((name: CharacteristicName, index: number) => void) | undefined;
  onFound: ((lock: FoundLock) => void) | undefined;
  onConnected: ((link: LockLink) => void) | undefined;
  /** Called with each notified value, before the client sees it. */
  onNotify: ((name: CharacteristicName, value: Uint8Array) => void) | undefined;
  private pendingUnanswered = false;

  constructor(private readonly inner: LockTransport) {}

  reset(): TransportRecord {
    const r = this.record;
    this.record = emptyRecord();
    return r;
  }

  async scan(lockId: string, options: ScanOptions): Promise<FoundLock> {
    this.record.scans++;
    const found = await this.inner.scan(lockId, options);
    this.onFound?.(found);
    return found;
  }

  async connect(lock: FoundLock, options: ConnectOptions): Promise<LockLink> {
    this.record.connects++;
    const link = await this.inner.connect(lock, options);
    this.onConnected?.(link);
    const rec = (): TransportRecord => this.record;
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    return {
      get mtu() {
        return link.mtu;
      },
      get connected() {
        return link.connected;
      },
      subscribe: async (name, onValue) => {
        rec().subscribes++;
        rec().roundTrips++;
        await link.subscribe(name, (v) => {
          rec().notifications++;
          self.onNotify?.(name, v);
          if (self.pendingUnanswered) {
            self.pendingUnanswered = false;
            rec().roundTrips++;
          }
          onValue(v);
        });
      },
      write: async (name, value, withoutResponse) => {
        const index = rec().writes.length;
        rec().writes.push({ name, value });
        if (withoutResponse) {
          rec().writesWithoutResponse++;
          this.pendingUnanswered = true;
        } else {
          rec().writesWithResponse++;
          rec().roundTrips++;
        }
        await link.write(name, value, withoutResponse);
        this.afterWrite?.(name, index);
      },
      read: async (name) => {
        rec().reads++;
        rec().roundTrips++;
        return link.read(name);
      },
      onDisconnect: (l) => link.onDisconnect(l),
      disconnect: () => link.disconnect(),
    };
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
