// Proof of possession and the request, SPEC.md §5.8 ([TANDEM-POP-*]).
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decodeStrict, encode } from '../src/cbor.js';
import type { CborValue } from '../src/cbor.js';
import { verifyChain } from '../src/chain.js';
import {
  Command,
  CHAIN_REF_LENGTH,
  createRequest,
  decodeRequest,
  popSignedBytes,
  verifyPop,
} from '../src/pop.js';
import { LOCK, issued, world } from './fixtures.js';
import { outcome as refusal } from './outcome.js';

describe('proof of possession', () => {
  const w = world();
  const token = issued(w);
  const grant = verifyChain([token], w.lookup, LOCK);
  const nonce = randomBytes(16);
  const request = createRequest({
    lockId: LOCK,
    nonce,
    command: Command.UNLOCK,
    chain: [token],
    chainHash: grant.chainHash,
    holderKey: w.rider,
  });

  it('a request by the holder verifies [TANDEM-POP-1]', () => {
    const r = decodeRequest(request);
    expect(r.command).toBe(Command.UNLOCK);
    expect(Buffer.from(r.nonce)).toEqual(nonce);
    expect(refusal(() => verifyPop(r, LOCK, grant.leaf.cnf, grant.chainHash))).toBe('accepted');
  });

  it('an unlock request with a typical token fits in two ATT writes at MTU 185 (at most 360 bytes before framing)', () => {
    expect(request.length).toBeLessThanOrEqual(360);
  });

  it('a copied token signed by another key is useless [TANDEM-POP-1]', () => {
    const thief = createRequest({
      lockId: LOCK,
      nonce,
      command: Command.UNLOCK,
      chain: [token],
      chainHash: grant.chainHash,
      holderKey: w.friend,
    });
    expect(refusal(() => verifyPop(decodeRequest(thief), LOCK, grant.leaf.cnf, grant.chainHash))).toBe(
      'ERR_POP_INVALID: proof-of-possession signature verification failed',
    );
  });

  it('the signature binds lock, nonce, command, args and chain [TANDEM-POP-3]', () => {
    const r = decodeRequest(request);
    const cases = [
      () => verifyPop(r, 'lock-other', grant.leaf.cnf, grant.chainHash),
      () => verifyPop({ ...r, nonce: randomBytes(16) }, LOCK, grant.leaf.cnf, grant.chainHash),
      () => verifyPop({ ...r, command: Command.SET_CONFIG }, LOCK, grant.leaf.cnf, grant.chainHash),
      () => verifyPop({ ...r, args: Uint8Array.of(1) }, LOCK, grant.leaf.cnf, grant.chainHash),
      () => verifyPop(r, LOCK, grant.leaf.cnf, randomBytes(32)),
    ];
    for (const c of cases) expect(refusal(c)).toMatch(/^ERR_POP_INVALID/);
  });

  it('a repeat request carries a 16-byte chain reference instead of the chain [TANDEM-POP-6]', () => {
    const repeat = createRequest({
      lockId: LOCK,
      nonce,
      command: Command.UNLOCK,
      chainRef: grant.chainHash.subarray(0, CHAIN_REF_LENGTH),
      chainHash: grant.chainHash,
      holderKey: w.rider,
    });
    expect(repeat.length).toBeLessThan(120);
    const r = decodeRequest(repeat);
    expect(r.chain).toBeUndefined();
    expect(refusal(() => verifyPop(r, LOCK, grant.leaf.cnf, grant.chainHash))).toBe('accepted');
  });

  const malformed: [string, (m: Map<number, CborValue>) => void, RegExp][] = [
    [
      'both chain and chainRef',
      (m) => m.set(2, new Uint8Array(16)),
      /exactly one of "chain" \(1\) and "chainRef" \(2\)/,
    ],
    ['neither chain nor chainRef', (m) => m.delete(1), /exactly one of/],
    ['an empty chain', (m) => m.set(1, []), /"chain" \(1\) must be a non-empty array/],
    ['an unknown command', (m) => m.set(3, 99), /"command" \(3\) is not a known command/],
    ['a short nonce', (m) => m.set(4, new Uint8Array(8)), /"nonce" \(4\) must be a byte string of 16 bytes/],
    ['args as a map', (m) => m.set(5, new Map()), /"args" \(5\) must be a byte string/],
    [
      'a DER signature',
      (m) => m.set(6, new Uint8Array(70)),
      /"signature" \(6\) must be a byte string of 64 bytes/,
    ],
    ['an unknown key', (m) => m.set(7, 1), /unknown key 7/],
  ];
  for (const [name, mutate, expected] of malformed) {
    it(`refuses a request with ${name} [TANDEM-POP-2]`, () => {
      const m = decodeStrict(request) as Map<number, CborValue>;
      mutate(m);
      expect(refusal(() => decodeRequest(encode(m)))).toMatch(
        new RegExp('^ERR_MESSAGE_INVALID: .*' + expected.source),
      );
    });
  }
});

describe('the PoP input, written directly as bytes [TANDEM-POP-3]', () => {
  it('is exactly the CBOR array the generic encoder gives, for every size of head', () => {
    const lockIds = ['l', 'lock-' + 'a'.repeat(18), 'lock-ü-' + 'b'.repeat(300), 'x'.repeat(70_000)];
    const lengths = [0, 1, 23, 24, 255, 256, 65_535, 65_536];
    const commands = [
      ...Object.values(Command).filter((v) => typeof v === 'number'),
      23,
      24,
      255,
      256,
      70_000,
    ];
    let checked = 0;
    for (const lockId of lockIds) {
      for (const n of lengths) {
        const bytes = randomBytes(n);
        for (const command of commands as number[]) {
          const expected = encode([
            'Tandem-PoP-v1',
            lockId,
            bytes.subarray(0, 16),
            command,
            bytes,
            bytes.subarray(0, 32),
          ]);
          const got = popSignedBytes(lockId, bytes.subarray(0, 16), command, bytes, bytes.subarray(0, 32));
          expect(Buffer.from(got).equals(Buffer.from(expected)), `${lockId.length} ${n} ${command}`).toBe(
            true,
          );
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(100);
  });

  it('refuses a command that is not an unsigned integer', () => {
    for (const bad of [-1, 1.5, 2 ** 32]) {
      expect(
        refusal(() =>
          popSignedBytes(LOCK, new Uint8Array(16), bad as Command, new Uint8Array(0), new Uint8Array(32)),
        ),
      ).toMatch(/^ERR_MESSAGE_INVALID: command .* is not an unsigned integer/);
    }
  });
});
