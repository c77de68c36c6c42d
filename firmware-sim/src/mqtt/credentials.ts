/**
 * The lock's MQTT password ([TANDEM-MQTT-13], lock half): 32 random bytes made on the lock at provisioning,
 * kept in a file of its data directory readable by the lock's user only (mode 0600), written as 64 lowercase
 * hex digits (text, so that any broker's password tooling takes it). The username is the lock id. The console
 * shows the password once, for registration with the cloud, which keeps only a hash of it.
 */
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { MqttLinkError } from './errors.js';

/** Bytes of secret in a password. */
export const MQTT_PASSWORD_BYTES = 32;
const HEX_PASSWORD = /^[0-9a-f]{64}$/;

/** The password in `path`, or undefined if there is none yet. Throws ERR_MQTT_CREDENTIALS if it is unusable. */
export async function readMqttPassword(path: string): Promise<string | undefined> {
  let text: string;
  try {
    const st = await stat(path);
    if ((st.mode & 0o077) !== 0) {
      throw new MqttLinkError(
        'ERR_MQTT_CREDENTIALS',
        `MQTT password file ${path} is readable by others (mode ${(st.mode & 0o777).toString(8)}): run chmod 600 ${path}, or remove it and register a new password`,
      );
    }
    text = await readFile(path, 'utf8');
  } catch (e) {
    if (e instanceof MqttLinkError) throw e;
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new MqttLinkError('ERR_MQTT_CREDENTIALS', `cannot read MQTT password file ${path}: ${String(e)}`, {
      cause: e,
    });
  }
  const password = text.trim();
  if (!HEX_PASSWORD.test(password)) {
    throw new MqttLinkError(
      'ERR_MQTT_CREDENTIALS',
      `MQTT password file ${path} must hold 64 hex digits (32 bytes): remove it and register a new password`,
    );
  }
  return password;
}

/**
 * Makes a new password and stores it in `path` crash-safely (write a temporary file created with mode 0600,
 * fsync, rename, fsync the directory), replacing any older one. Returns it.
 */
export async function writeNewMqttPassword(
  path: string,
  random: (n: number) => Uint8Array = (n) => new Uint8Array(randomBytes(n)),
): Promise<string> {
  const password = Buffer.from(random(MQTT_PASSWORD_BYTES)).toString('hex');
  const tmp = `${path}.tmp`;
  try {
    // The mode argument only applies when the file is created: a stale tmp file left by a power cut keeps
    // its own mode, hence the chmod before any secret is written.
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.chmod(0o600);
      await fh.writeFile(`${password}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    const dir = await open(dirname(path), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  } catch (e) {
    throw new MqttLinkError('ERR_MQTT_CREDENTIALS', `cannot write MQTT password file ${path}: ${String(e)}`, {
      cause: e,
    });
  }
  return password;
}

/** The stored password, made on first use. */
export async function loadOrCreateMqttPassword(
  path: string,
  random?: (n: number) => Uint8Array,
): Promise<string> {
  return (await readMqttPassword(path)) ?? (await writeNewMqttPassword(path, random));
}
