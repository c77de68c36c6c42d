// One harness for Tandem's own vectors (protocol/vectors/*.json, SPEC.md §10): every vector gives its
// expected verdict, and the reproducible ones (EdDSA only) are rebuilt byte for byte by the generator.
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { decodeStrict } from '../src/cbor.js';
import { verifyGrant } from '../src/chain.js';
import type { TrustAnchor } from '../src/chain.js';
import { ProtocolError } from '../src/errors.js';
import { publicKeyFromRaw } from '../src/keys.js';
import type { Alg } from '../src/keys.js';
import { decodeRequest, verifyPop } from '../src/pop.js';
import { EMPTY_REVOCATION_STATE, applyRevocationUpdate, verifyRevocationUpdate } from '../src/revocation.js';
import { verifyTimeBeacon } from '../src/time-beacon.js';
import { applyAnchorUpdate, verifyAnchorUpdate } from '../src/anchor-update.js';
import type { AnchorState } from '../src/anchor-update.js';
import { frameMessage } from '../src/gatt.js';
import { parseTopic, verifyLockState } from '../src/mqtt.js';
import { verifyClaimReceipt } from '../src/claim-receipt.js';
import {
  checkRemoteCommandSequence,
  checkRemoteCommandTime,
  verifyRemoteCommand,
} from '../src/remote-command.js';
import { build } from '../vectors/generate.js';
import type { Vector, VectorFile } from '../vectors/generate.js';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'vectors');
const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
const b = (h: string) => Buffer.from(h, 'hex');
const hex = (u: Uint8Array) => Buffer.from(u).toString('hex');

interface AnchorJson {
  kid: string;
  alg: Alg;
  publicKey: string;
  role: 'issuer' | 'owner';
  name: string;
}

function lookupOf(anchors: AnchorJson[]) {
  const parsed: TrustAnchor[] = anchors.map((a) => ({
    kid: b(a.kid),
    key: publicKeyFromRaw(a.alg, b(a.publicKey)),
    role: a.role,
    name: a.name,
  }));
  return (kid: Uint8Array) => parsed.find((a) => Buffer.compare(a.kid, kid) === 0);
}

function verifyAsLock(input: Record<string, unknown>) {
  const now = input.now as number;
  return verifyGrant((input.chain as string[]).map(b), {
    anchors: lookupOf(input.anchors as AnchorJson[]),
    lockId: input.lockId as string,
    time: { earliest: now, latest: now },
    timeZone: input.timeZone as string,
  });
}

const RUN: Record<VectorFile['kind'], (input: Record<string, unknown>) => Record<string, unknown>> = {
  'cbor-decode': (input) => {
    decodeStrict(b(input.hex as string));
    return {};
  },
  'chain-verify': (input) => {
    const g = verifyAsLock(input);
    return {
      rider: g.leaf.rider,
      scope: g.leaf.scope,
      exp: g.exp,
      bytes: (input.chain as string[])[0]!.length / 2,
    };
  },
  'revocation-apply': (input) => {
    const lookup = lookupOf(input.anchors as AnchorJson[]);
    let state = EMPTY_REVOCATION_STATE;
    for (const u of input.updates as string[]) {
      const update = verifyRevocationUpdate(b(u), (kid) => lookup(kid)?.key, input.lockId as string);
      state = applyRevocationUpdate(state, update, input.now as number);
    }
    return { version: state.version, revoked: [...state.entries.keys()].sort() };
  },
  'anchor-apply': (input) => {
    let state: AnchorState = {
      version: 0,
      anchors: (input.anchors as AnchorJson[]).map((a) => ({
        kid: b(a.kid),
        alg: a.alg,
        key: b(a.publicKey),
        role: a.role,
        name: a.name,
      })),
    };
    for (const u of input.updates as string[]) {
      const lookup = lookupOf(state.anchors.map((a) => ({ ...a, kid: hex(a.kid), publicKey: hex(a.key) })));
      // [TANDEM-ANCHOR-2]: issuer anchors only.
      const issuerKey = (kid: Uint8Array) => {
        const a = lookup(kid);
        return a?.role === 'issuer' ? a.key : undefined;
      };
      state = applyAnchorUpdate(state, verifyAnchorUpdate(b(u), issuerKey, input.lockId as string)).state;
    }
    return {
      version: state.version,
      anchors: state.anchors.map((a) => `${hex(a.kid)}:${a.role}:${a.name}`).sort(),
    };
  },
  'time-beacon-verify': (input) => {
    const lookup = lookupOf(input.anchors as AnchorJson[]);
    const beacon = verifyTimeBeacon(
      b(input.beacon as string),
      (kid) => lookup(kid)?.key,
      input.lockId as string,
    );
    return { time: beacon.time, bound: beacon.nonce !== undefined };
  },
  'gatt-frames': (input) => {
    const frames = frameMessage(input.type as number, b(input.body as string), input.attMtu as number);
    return { frames: frames.map((f) => Buffer.from(f).toString('hex')), count: frames.length };
  },
  'mqtt-topic': (input) => {
    const t = parseTopic(input.topic as string);
    return { ...t };
  },
  'lock-state-verify': (input) => {
    const r = verifyLockState(
      b(input.state as string),
      publicKeyFromRaw('EdDSA', b(input.deviceKey as string)),
      input.lockId as string,
    );
    return { ...r, battery: r.battery ?? null };
  },
  'claim-receipt-verify': (input) => {
    const r = verifyClaimReceipt(
      b(input.receipt as string),
      publicKeyFromRaw('EdDSA', b(input.deviceKey as string)),
      input.lockId as string,
    );
    return {
      owner: r.owner,
      ownerKey: Buffer.from(r.ownerKey.raw).toString('hex'),
      ownerKid: Buffer.from(r.ownerKid).toString('hex'),
      claimedAt: r.claimedAt,
    };
  },
  'remote-command-verify': (input) => {
    const lookup = lookupOf(input.anchors as AnchorJson[]);
    const c = verifyRemoteCommand(
      b(input.command as string),
      (kid) => lookup(kid)?.key,
      input.lockId as string,
    );
    checkRemoteCommandTime(c, { earliest: input.earliest as number, latest: input.latest as number });
    checkRemoteCommandSequence(c, input.lastSequence as number);
    return { command: c.command, sequence: c.sequence };
  },
  'pop-verify': (input) => {
    const g = verifyAsLock(input);
    const r = decodeRequest(b(input.request as string));
    if (Buffer.compare(Buffer.from(r.nonce), b(input.nonce as string)) !== 0)
      throw new Error('nonce mismatch');
    verifyPop(r, input.lockId as string, g.leaf.cnf, g.chainHash);
    return { command: r.command };
  },
};

describe('protocol/vectors', () => {
  const rebuilt = new Map(build().map((f) => [f.file, f]));
  it('every vector file is one the generator builds', () => {
    expect(files.sort()).toEqual([...rebuilt.keys()].sort());
  });
  for (const file of files) {
    const data = JSON.parse(readFileSync(join(dir, file), 'utf8')) as {
      kind: VectorFile['kind'];
      vectors: Vector[];
    };
    describe(file, () => {
      for (const [i, v] of data.vectors.entries()) {
        it(v.title, () => {
          let got: Record<string, unknown>;
          try {
            got = { ok: true, ...RUN[data.kind](v.input) };
          } catch (e) {
            if (!(e instanceof ProtocolError)) throw e;
            got = { error: e.code };
          }
          if ('error' in v.expected) expect(got).toEqual({ error: v.expected.error });
          else expect(got).toMatchObject(v.expected);
          if (v.reproducible) {
            expect(
              rebuilt.get(file)!.vectors[i]!.input,
              'generator no longer reproduces this vector',
            ).toEqual(v.input);
          }
        });
      }
    });
  }
});
