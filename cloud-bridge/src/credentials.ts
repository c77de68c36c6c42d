/**
 * MQTT credentials of locks and of the bridge ([TANDEM-MQTT-13]).
 *
 * A lock's MQTT password is 32 random bytes drawn at provisioning, sent on the wire as 64 lowercase hex
 * digits (firmware-sim/src/mqtt/credentials.ts makes it) so that every broker treats it as an ordinary string. The cloud never stores
 * it: it stores only a salted PBKDF2-SHA512 hash in Mosquitto's own `$7$` password-file format
 * (`$7$<iterations>$<base64 salt>$<base64 hash>`), so one record authenticates the lock in aedes (the
 * `authenticate` hook calls {@link verifyPasswordRecord}) and in Mosquitto (the cloud writes the records
 * into a `password_file`). A leaked database gives an attacker hashes of 256-bit random secrets: nothing to
 * impersonate a lock with. Because the secret has full entropy, stretching adds nothing; the iteration count
 * is Mosquitto's default (101) so that `mosquitto_passwd` and this module make interchangeable records.
 */
import { pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { CloudError } from './errors.js';

/** Bytes of a lock's random MQTT password before encoding ([TANDEM-MQTT-13]). */
export const PASSWORD_BYTES = 32;
/** PBKDF2 iterations of new records: Mosquitto 2's `mosquitto_passwd` default. */
export const PASSWORD_ITERATIONS = 101;
const SALT_BYTES = 12;
const HASH_BYTES = 64;
// Refuse records that would make every connection attempt expensive (a hostile or corrupt record).
const MAX_ITERATIONS = 1_000_000;
const RECORD = /^\$7\$(\d{1,7})\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/;
const PASSWORD_TEXT = /^[0-9a-f]{64}$/;

/**
 * The bridge's MQTT user name. It can never be a lock id ([TANDEM-GEN-3] has no `.`), so no lock can claim
 * it, and it holds no `:` or whitespace, which Mosquitto's password file and ACL file would misread.
 */
export const BRIDGE_USERNAME = 'tandem.bridge';

/** A fresh random password as a lock or the bridge sends it: 32 random bytes as 64 lowercase hex digits. */
export function generatePassword(): string {
  return randomBytes(PASSWORD_BYTES).toString('hex');
}

/** True when `s` has the shape of a password made by {@link generatePassword} ([TANDEM-MQTT-13]). */
export function isPasswordText(s: string): boolean {
  return PASSWORD_TEXT.test(s);
}

/** Hashes `password` into a Mosquitto `$7$` record (PBKDF2-SHA512, random 12-byte salt, 64-byte hash). */
export function hashPassword(password: string, iterations = PASSWORD_ITERATIONS): string {
  const salt = randomBytes(SALT_BYTES);
  const hash = pbkdf2Sync(Buffer.from(password, 'utf8'), salt, iterations, HASH_BYTES, 'sha512');
  return `$7$${iterations}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

/** The parts of a `$7$` record; ERR_CLOUD_CREDENTIAL naming what is wrong. */
export function parsePasswordRecord(record: string): { iterations: number; salt: Buffer; hash: Buffer } {
  const m = typeof record === 'string' ? RECORD.exec(record) : null;
  if (m === null) {
    throw new CloudError(
      'ERR_CLOUD_CREDENTIAL',
      'password record must be Mosquitto\'s "$7$<iterations>$<base64 salt>$<base64 hash>" ([TANDEM-MQTT-13])',
    );
  }
  const iterations = Number(m[1]);
  if (iterations < 1 || iterations > MAX_ITERATIONS) {
    throw new CloudError('ERR_CLOUD_CREDENTIAL', `password record iterations must be 1 to ${MAX_ITERATIONS}`);
  }
  const salt = Buffer.from(m[2]!, 'base64');
  const hash = Buffer.from(m[3]!, 'base64');
  if (salt.length < 8 || hash.length !== HASH_BYTES) {
    throw new CloudError(
      'ERR_CLOUD_CREDENTIAL',
      `password record must have a salt of at least 8 bytes and a ${HASH_BYTES}-byte SHA-512 hash`,
    );
  }
  return { iterations, salt, hash };
}

/** True when `password` matches the `$7$` record; false for any mismatch or malformed record. */
export function verifyPasswordRecord(record: string, password: Uint8Array | string): boolean {
  let parsed;
  try {
    parsed = parsePasswordRecord(record);
  } catch {
    return false;
  }
  const pw = typeof password === 'string' ? Buffer.from(password, 'utf8') : Buffer.from(password);
  // A password is at most a few dozen bytes; refuse absurd ones before hashing them.
  if (pw.length === 0 || pw.length > 256) return false;
  const got = pbkdf2Sync(pw, parsed.salt, parsed.iterations, HASH_BYTES, 'sha512');
  return timingSafeEqual(got, parsed.hash);
}
