/**
 * The lock's provisioned identity (ARCHITECTURE.md, flow 1), as kept in its config store: the lock id, the
 * device key pair, whether the owner has claimed it, and whether the MQTT password was shown. The runtime
 * loads it at start; the console's provisioning commands change it. Both go through this module, so the
 * store keys and their meaning are written down once.
 */
import { createPrivateKey, createPublicKey } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { generateKeyPair, privateKeyFromKeyObject, publicKeyFromRaw } from '../../../protocol/src/index.js';
import type { Alg, PrivateKey } from '../../../protocol/src/index.js';
import { ConsoleError } from '../console/console-interpreter.js';
import type { AnchorRecord } from '../lock/index.js';
import type { ConfigStore } from '../store/index.js';

/** ConfigStore keys of the provisioned identity (flow 1). */
export const IDENTITY = {
  lockId: 'identity.lockId',
  deviceKey: 'identity.deviceKey',
  mqtt: 'identity.mqtt',
  claimed: 'identity.claimed',
  /** The MQTT password has been shown on the console ([TANDEM-MQTT-13]). */
  mqttPasswordShown: 'identity.mqttPasswordShown',
} as const;

/**
 * The DER prefix of an Ed25519 private key in PKCS#8 v1 as Node and OpenSSL write it (RFC 8410 §7): SEQUENCE,
 * version 0, AlgorithmIdentifier id-Ed25519 (1.3.101.112), OCTET STRING holding the 32-byte seed as an OCTET
 * STRING. What `generateKeyPair` stores is exactly this prefix and the seed, 48 bytes.
 */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/**
 * The stored device key as a KeyObject. The usual 48-byte PKCS#8 form is imported from its seed as a JWK
 * (RFC 8037), which Node hands to OpenSSL's raw key import (EVP_PKEY_new_raw_private_key); the DER route runs
 * OpenSSL 3's decoder framework, ~0.5 ms against ~0.06 ms here, at every start of the lock (issue 8 §2; on a
 * Pi Zero several times that). The public half is derived from the seed (`publicKeyFromKeyObject`), so the
 * JWK's `x`, which Node does not check for a private OKP key, is left empty rather than trusted. Any other
 * form, and anything the JWK import refuses, goes through the DER route, which decides what is accepted.
 */
function importDeviceKey(stored: Uint8Array): KeyObject {
  const der = Buffer.from(stored.buffer, stored.byteOffset, stored.byteLength);
  if (der.length === ED25519_PKCS8_PREFIX.length + 32 && der.subarray(0, 16).equals(ED25519_PKCS8_PREFIX)) {
    try {
      const d = der.subarray(16).toString('base64url');
      return createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d, x: '' }, format: 'jwk' });
    } catch {
      // the DER route below gives the verdict and its message
    }
  }
  return createPrivateKey({ key: Buffer.from(stored), format: 'der', type: 'pkcs8' });
}

/**
 * The device key with its public half. An Ed25519 key's public half is read as the `x` of its JWK export
 * (RFC 8037, ~5 µs); `privateKeyFromKeyObject` exports SPKI DER through OpenSSL 3's encoder framework, ~0.3 ms
 * here, at every start (issue 8 §2). Any other key type goes through `privateKeyFromKeyObject`, which refuses it.
 */
function deviceKeyPair(key: KeyObject): PrivateKey {
  if (key.type !== 'private' || key.asymmetricKeyType !== 'ed25519')
    return privateKeyFromKeyObject('EdDSA', key);
  const { x } = createPublicKey(key).export({ format: 'jwk' });
  if (typeof x !== 'string') return privateKeyFromKeyObject('EdDSA', key);
  return { alg: 'EdDSA', key, publicKey: publicKeyFromRaw('EdDSA', Buffer.from(x, 'base64url')) };
}

/** The identity of one lock, read through its config store (module comment). */
export class LockIdentity {
  readonly #config: ConfigStore;
  /** Signs audit records, alerts and revocation acknowledgements; never leaves the lock. */
  readonly deviceKey: PrivateKey;

  private constructor(config: ConfigStore, deviceKey: PrivateKey) {
    this.#config = config;
    this.deviceKey = deviceKey;
  }

  /**
   * Reads the device key, or makes one at first start, so that the private half never leaves the lock
   * (flow 1). A stored key that is not an Ed25519 PKCS#8 key stops the start: the lock cannot sign.
   */
  static async load(config: ConfigStore): Promise<LockIdentity> {
    const stored = config.getBytes(IDENTITY.deviceKey);
    if (stored) {
      let key: PrivateKey;
      try {
        key = deviceKeyPair(importDeviceKey(stored));
      } catch (cause) {
        throw new Error(`the stored device key (${IDENTITY.deviceKey}) is not an Ed25519 PKCS#8 key`, {
          cause,
        });
      }
      return new LockIdentity(config, key);
    }
    const key = generateKeyPair('EdDSA');
    await config.set(IDENTITY.deviceKey, new Uint8Array(key.key.export({ format: 'der', type: 'pkcs8' })));
    return new LockIdentity(config, key);
  }

  /** The provisioned lock id, or undefined. */
  get lockId(): string | undefined {
    const v = this.#config.get(IDENTITY.lockId);
    return typeof v === 'string' ? v : undefined;
  }

  setLockId(id: string): Promise<void> {
    return this.#config.set(IDENTITY.lockId, id);
  }

  /** True once the owner has claimed the lock: provisioning is then closed for good. */
  get claimed(): boolean {
    return this.#config.get(IDENTITY.claimed) === true;
  }

  markClaimed(): Promise<void> {
    return this.#config.set(IDENTITY.claimed, true);
  }

  /** The device public key (raw Ed25519), for registering the lock with the cloud. */
  get devicePublicKey(): Uint8Array {
    return this.deviceKey.publicKey.raw;
  }

  /** True once the MQTT password was shown ([TANDEM-MQTT-13]: shown once only). */
  get mqttPasswordShown(): boolean {
    return this.#config.get(IDENTITY.mqttPasswordShown) === true;
  }

  markMqttPasswordShown(): Promise<void> {
    return this.#config.set(IDENTITY.mqttPasswordShown, true);
  }
}

/**
 * An anchor as typed at the console (hex kid and key): the key is parsed for its algorithm, so that a
 * malformed key is refused before anything is stored.
 */
export function anchorFromConsole(
  kidHex: string,
  alg: string,
  keyHex: string,
  role: AnchorRecord['role'],
  name: string,
): AnchorRecord {
  let key: Uint8Array;
  try {
    key = publicKeyFromRaw(alg as Alg, hexBytes(keyHex)).raw;
  } catch (e) {
    throw new ConsoleError(
      'ERR_CONSOLE_USAGE',
      `<public-key> is not a valid ${alg} key: ${(e as Error).message}`,
    );
  }
  return { kid: hexBytes(kidHex), alg: alg as Alg, key, role, name };
}

export const hexBytes = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'));
