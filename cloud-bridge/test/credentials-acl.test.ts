import { describe, expect, it } from 'vitest';
import {
  HOME_ASSISTANT_USERNAME,
  identityOf,
  mosquittoAcl,
  mosquittoPasswordFile,
  publishRefusal,
  subscribeRefusal,
} from '../src/acl.js';
import {
  BRIDGE_USERNAME,
  generatePassword,
  hashPassword,
  isPasswordText,
  parsePasswordRecord,
  verifyPasswordRecord,
} from '../src/credentials.js';
import { isCloudError } from '../src/errors.js';

const lock7 = { kind: 'lock', lockId: 'lock-7' } as const;
const bridge = { kind: 'bridge' } as const;

describe('lock credentials ([TANDEM-MQTT-13])', () => {
  it('a password is 32 random bytes as 64 lowercase hex digits', () => {
    const a = generatePassword();
    expect(isPasswordText(a)).toBe(true);
    expect(Buffer.from(a, 'hex')).toHaveLength(32);
    expect(isPasswordText(a.toUpperCase())).toBe(false);
    expect(generatePassword()).not.toBe(a);
  });

  it("hashes into Mosquitto's $7$ format and verifies only the right password", () => {
    const pw = generatePassword();
    const record = hashPassword(pw);
    expect(record).toMatch(/^\$7\$101\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==$/);
    expect(verifyPasswordRecord(record, pw)).toBe(true);
    expect(verifyPasswordRecord(record, Buffer.from(pw))).toBe(true);
    expect(verifyPasswordRecord(record, `${pw.slice(0, -1)}${pw.endsWith('0') ? '1' : '0'}`)).toBe(false);
    expect(verifyPasswordRecord(record, '')).toBe(false);
    expect(verifyPasswordRecord('$6$nope', pw)).toBe(false);
  });

  it('refuses malformed records with a coded error naming the format', () => {
    for (const bad of [
      '',
      '$7$0$AAAAAAAAAAAA$AAAA',
      '$7$101$AA$' + 'A'.repeat(88),
      '$7$9999999$AAAAAAAAAAAAAAAA$' + 'A'.repeat(88),
    ]) {
      let err: unknown;
      try {
        parsePasswordRecord(bad);
      } catch (e) {
        err = e;
      }
      expect(isCloudError(err, 'ERR_CLOUD_CREDENTIAL')).toBe(true);
    }
  });
});

describe('authorisation rules ([TANDEM-MQTT-4])', () => {
  it('a lock publishes exactly its own lock → cloud topics', () => {
    for (const k of ['state', 'alert', 'audit', 'revocation-ack', 'time-request', 'anchor-ack']) {
      expect(publishRefusal(lock7, `tandem/v1/lock/lock-7/${k}`)).toBeNull();
      expect(publishRefusal(lock7, `tandem/v1/lock/lock-8/${k}`)).toMatch(/lock-8's topic/);
    }
    // [TANDEM-ANCHOR-6]: a stolen lock credential cannot publish an anchor update, even to its own lock.
    for (const k of ['revocation', 'outbox-ack', 'beacon', 'anchor', 'command']) {
      expect(publishRefusal(lock7, `tandem/v1/lock/lock-7/${k}`)).toMatch(/cloud topic/);
    }
    expect(publishRefusal(lock7, 'tandem/v1/time')).toMatch(/cloud topic/);
    expect(publishRefusal(lock7, 'other/topic')).toMatch(/outside the Tandem tree/);
  });

  it('a lock subscribes exactly its own cloud → lock topics and the time topic, no wildcard', () => {
    for (const k of ['revocation', 'outbox-ack', 'beacon', 'anchor', 'command']) {
      expect(subscribeRefusal(lock7, `tandem/v1/lock/lock-7/${k}`)).toBeNull();
      expect(subscribeRefusal(lock7, `tandem/v1/lock/lock-8/${k}`)).not.toBeNull();
    }
    expect(subscribeRefusal(lock7, 'tandem/v1/time')).toBeNull();
    for (const f of [
      'tandem/v1/lock/lock-7/alert',
      'tandem/v1/lock/+/revocation',
      'tandem/v1/#',
      '#',
      '$share/g/tandem/v1/time',
    ]) {
      expect(subscribeRefusal(lock7, f)).not.toBeNull();
    }
  });

  it('the bridge publishes cloud → lock topics and subscribes lock → cloud ones, shared or not', () => {
    expect(publishRefusal(bridge, 'tandem/v1/lock/lock-7/outbox-ack')).toBeNull();
    expect(publishRefusal(bridge, 'tandem/v1/lock/lock-7/anchor')).toBeNull();
    expect(subscribeRefusal(bridge, 'tandem/v1/lock/+/anchor-ack')).toBeNull();
    expect(publishRefusal(bridge, 'tandem/v1/lock/lock-7/anchor-ack')).not.toBeNull();
    expect(publishRefusal(bridge, 'tandem/v1/time')).toBeNull();
    expect(publishRefusal(bridge, 'tandem/v1/lock/lock-7/alert')).not.toBeNull();
    expect(subscribeRefusal(bridge, 'tandem/v1/lock/+/alert')).toBeNull();
    expect(subscribeRefusal(bridge, '$share/tandem/tandem/v1/lock/+/audit')).toBeNull();
    expect(subscribeRefusal(bridge, 'tandem/v1/lock/+/revocation')).not.toBeNull();
    expect(subscribeRefusal(bridge, '#')).not.toBeNull();
    expect(subscribeRefusal(bridge, '$share/+/tandem/v1/lock/+/audit')).not.toBeNull();
  });

  it("writes the same rules as Mosquitto's ACL and password file", () => {
    const acl = mosquittoAcl();
    expect(acl).toContain('pattern write tandem/v1/lock/%u/alert');
    expect(acl).toContain('pattern read tandem/v1/lock/%u/beacon');
    expect(acl).toContain('pattern read tandem/v1/lock/%u/anchor');
    expect(acl).toContain('pattern write tandem/v1/lock/%u/anchor-ack');
    expect(acl).toContain('topic write tandem/v1/lock/+/anchor');
    expect(acl).not.toContain('pattern write tandem/v1/lock/%u/anchor\n');
    expect(acl).toContain(`user ${BRIDGE_USERNAME}`);
    expect(acl).not.toMatch(/topic (read|write) #|readwrite/);
    expect(mosquittoPasswordFile([['lock-7', '$7$x']])).toBe('lock-7:$7$x\n');
    expect(() => mosquittoPasswordFile([['bad:user', '$7$x']])).toThrow(/not a Tandem MQTT user name/);
  });
});

describe('remote commands and Home Assistant ([TANDEM-RCMD-8], [TANDEM-HA-4])', () => {
  const ha = { kind: 'home-assistant' } as const;

  it("Home Assistant's user publishes only tandem/ha/{lock}/set, never a lock topic", () => {
    expect(identityOf(HOME_ASSISTANT_USERNAME)).toEqual(ha);
    expect(publishRefusal(ha, 'tandem/ha/lock-7/set')).toBeNull();
    for (const t of [
      'tandem/v1/lock/lock-7/command',
      'tandem/v1/lock/lock-7/revocation',
      'tandem/v1/time',
      'tandem/ha/lock-7/state',
      'tandem/ha/lock-7/availability',
      'tandem/ha/+/set',
      'tandem/ha/Lock-7/set',
      'homeassistant/lock/tandem_lock-7/lock/config',
    ]) {
      expect(publishRefusal(ha, t)).toMatch(/Home Assistant may publish only tandem\/ha\/\{lock id\}\/set/);
    }
  });

  it('Home Assistant reads discovery and states, nothing under tandem/v1', () => {
    for (const f of [
      'homeassistant/#',
      'tandem/ha/#',
      'tandem/ha/lock-7/state',
      'homeassistant/lock/+/+/config',
    ]) {
      expect(subscribeRefusal(ha, f)).toBeNull();
    }
    for (const f of [
      '#',
      'tandem/#',
      'tandem/v1/lock/+/command',
      'tandem/v1/lock/lock-7/state',
      'tandem/hax/1',
    ]) {
      expect(subscribeRefusal(ha, f)).toMatch(/Home Assistant may subscribe only/);
    }
  });

  it('only the bridge publishes command topics; a lock subscribes only its own; the bridge reads tandem/ha/+/set', () => {
    expect(publishRefusal(bridge, 'tandem/v1/lock/lock-7/command')).toBeNull();
    expect(publishRefusal(lock7, 'tandem/v1/lock/lock-7/command')).toMatch(/cloud topic/);
    expect(subscribeRefusal(lock7, 'tandem/v1/lock/lock-7/command')).toBeNull();
    expect(subscribeRefusal(lock7, 'tandem/v1/lock/lock-8/command')).toMatch(/lock-8's topic/);
    expect(subscribeRefusal(bridge, 'tandem/ha/+/set')).toBeNull();
    expect(subscribeRefusal(bridge, 'tandem/v1/lock/+/command')).not.toBeNull();
    // Neither a lock nor the bridge may press Home Assistant's button.
    expect(publishRefusal(lock7, 'tandem/ha/lock-7/set')).not.toBeNull();
    expect(publishRefusal(bridge, 'tandem/ha/lock-7/set')).not.toBeNull();
  });

  it("Mosquitto's ACL says the same", () => {
    const acl = mosquittoAcl();
    expect(acl).toContain('pattern read tandem/v1/lock/%u/command');
    expect(acl).not.toContain('pattern write tandem/v1/lock/%u/command');
    expect(acl).toContain('topic write tandem/v1/lock/+/command');
    expect(acl).toContain('topic read tandem/ha/+/set');
    const haSection = acl.slice(acl.indexOf(`user ${HOME_ASSISTANT_USERNAME}`));
    expect(haSection.trim().split('\n')).toEqual([
      `user ${HOME_ASSISTANT_USERNAME}`,
      'topic read homeassistant/#',
      'topic read tandem/ha/#',
      'topic write tandem/ha/+/set',
    ]);
    expect(mosquittoPasswordFile([[HOME_ASSISTANT_USERNAME, '$7$x']])).toBe(
      `${HOME_ASSISTANT_USERNAME}:$7$x\n`,
    );
  });
});
