/**
 * The lock's provisioned identity (ARCHITECTURE.md, flow 1), as kept in its config store: the lock id, the
 * device key pair, whether the owner has claimed it, and whether the MQTT password was shown. The runtime
 * loads it at start; the console's provisioning commands change it. Both go through this module, so the
 * store keys and their meaning are written down once.
 */
import { createPrivateKey } from 'node:crypto';
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
        key = privateKeyFromKeyObject(
          'EdDSA',
          createPrivateKey({ key: Buffer.from(stored), format: 'der', type: 'pkcs8' }),
        );
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
