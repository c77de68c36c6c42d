// The device key as the runtime loads it at every start (runtime/identity.ts): the usual 48-byte PKCS#8 form is
// imported from its seed (issue 8 §2, start time), anything else through the DER route, and a stored key the
// lock cannot sign with stops the start.
import { generateKeyPairSync, sign, verify } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { LockIdentity, IDENTITY } from '../src/runtime/identity.js';
import { ConfigStore, CrashingStoreFs } from '../src/store/index.js';

async function storeWith(deviceKey?: Uint8Array): Promise<ConfigStore> {
  const config = await ConfigStore.open(new CrashingStoreFs(), '/lock');
  if (deviceKey !== undefined) await config.set(IDENTITY.deviceKey, deviceKey);
  return config;
}

describe('LockIdentity.load: the stored device key', () => {
  it('loads the 48-byte PKCS#8 key that signs exactly as the key that was stored', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const der = new Uint8Array(privateKey.export({ format: 'der', type: 'pkcs8' }));
    expect(der.length).toBe(48);
    const identity = await LockIdentity.load(await storeWith(der));
    const message = Buffer.from('audit record hash');
    // Ed25519 is deterministic: the same seed gives the same signature, byte for byte.
    const signature = sign(null, message, identity.deviceKey.key);
    expect(Buffer.from(signature).equals(sign(null, message, privateKey))).toBe(true);
    expect(verify(null, message, publicKey, signature)).toBe(true);
    const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(12);
    expect(Buffer.from(identity.devicePublicKey).equals(raw)).toBe(true);
    expect(Buffer.from(identity.deviceKey.key.export({ format: 'der', type: 'pkcs8' })).equals(der)).toBe(
      true,
    );
  });

  it('refuses a stored key that is not Ed25519 PKCS#8, with the store key in the message', async () => {
    const { privateKey } = generateKeyPairSync('ed25519');
    const der = new Uint8Array(privateKey.export({ format: 'der', type: 'pkcs8' }));
    der[11] ^= 1; // the OID's last byte: 1.3.101.113 (Ed448) where 1.3.101.112 stood
    await expect(LockIdentity.load(await storeWith(der))).rejects.toThrow(
      'the stored device key (identity.deviceKey) is not an Ed25519 PKCS#8 key',
    );
    const p256 = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    const ecDer = new Uint8Array(p256.export({ format: 'der', type: 'pkcs8' }));
    await expect(LockIdentity.load(await storeWith(ecDer))).rejects.toThrow(
      'the stored device key (identity.deviceKey) is not an Ed25519 PKCS#8 key',
    );
  });

  it('makes and stores a key at first start, which the next start loads unchanged', async () => {
    const config = await storeWith();
    const first = await LockIdentity.load(config);
    const stored = config.getBytes(IDENTITY.deviceKey);
    expect(stored?.length).toBe(48);
    const again = await LockIdentity.load(config);
    expect(Buffer.from(again.devicePublicKey).equals(Buffer.from(first.devicePublicKey))).toBe(true);
  });
});
