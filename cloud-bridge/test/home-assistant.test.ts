// Home Assistant discovery ([TANDEM-HA-1] to [TANDEM-HA-4]): every discovery payload is checked against the
// configuration variables Home Assistant documents for its platform (home-assistant.io, integrations
// lock.mqtt, sensor.mqtt, binary_sensor.mqtt, "Configuration Variables"; the discovery-only `device` map of
// the same pages), and the bridge publishes only from verified state reports, on topics the ACL lets only it use.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mosquittoAcl, publishRefusal, subscribeRefusal } from '../src/acl.js';
import { startCloud } from '../src/cloud.js';
import type { Cloud } from '../src/cloud.js';
import {
  HomeAssistantPublisher,
  availabilityMessage,
  discoveryMessages,
  isHomeAssistantTopic,
  stateMessage,
} from '../src/home-assistant.js';
import type { HaMessage } from '../src/home-assistant.js';
import type { LockStateReport } from '../../protocol/src/mqtt.js';
import { encodeLockState, topicFor } from '../../protocol/src/mqtt.js';
import { generateKeyPair } from '../../protocol/src/keys.js';

/** Fields every MQTT entity platform documents (availability, device registry, naming, entity options). */
const COMMON = [
  'availability',
  'availability_mode',
  'availability_template',
  'availability_topic',
  'device',
  'enabled_by_default',
  'encoding',
  'entity_category',
  'icon',
  'json_attributes_template',
  'json_attributes_topic',
  'name',
  'object_id',
  'payload_available',
  'payload_not_available',
  'qos',
  'unique_id',
  'origin',
];

/** lock.mqtt "Configuration Variables". */
const LOCK_FIELDS = [
  ...COMMON,
  'code_format',
  'command_template',
  'command_topic',
  'optimistic',
  'payload_lock',
  'payload_unlock',
  'payload_open',
  'payload_reset',
  'retain',
  'state_jammed',
  'state_locked',
  'state_locking',
  'state_topic',
  'state_unlocked',
  'state_unlocking',
  'value_template',
];
/** sensor.mqtt "Configuration Variables". */
const SENSOR_FIELDS = [
  ...COMMON,
  'device_class',
  'expire_after',
  'force_update',
  'last_reset_value_template',
  'options',
  'state_class',
  'state_topic',
  'suggested_display_precision',
  'unit_of_measurement',
  'value_template',
];
/** binary_sensor.mqtt "Configuration Variables". */
const BINARY_SENSOR_FIELDS = [
  ...COMMON,
  'device_class',
  'expire_after',
  'force_update',
  'off_delay',
  'payload_off',
  'payload_on',
  'state_topic',
  'value_template',
];
/** What each platform marks "required: true". */
const REQUIRED: Record<string, string[]> = {
  lock: ['command_topic'],
  sensor: ['state_topic'],
  binary_sensor: ['state_topic'],
};
const FIELDS: Record<string, string[]> = {
  lock: LOCK_FIELDS,
  sensor: SENSOR_FIELDS,
  binary_sensor: BINARY_SENSOR_FIELDS,
};
/** The `device` map (identifiers or connections required). */
const DEVICE_FIELDS = [
  'configuration_url',
  'connections',
  'hw_version',
  'identifiers',
  'manufacturer',
  'model',
  'name',
  'serial_number',
  'suggested_area',
  'sw_version',
  'via_device',
];
/** Device classes Home Assistant documents for the classes used here. */
const BINARY_SENSOR_CLASSES = ['tamper', 'problem', 'moving', 'vibration', 'lock', 'safety'];
const SENSOR_CLASSES = ['enum', 'duration', 'battery', 'timestamp'];

function checkConfig(m: HaMessage): Record<string, unknown> {
  const match =
    /^homeassistant\/(lock|sensor|binary_sensor)\/([a-zA-Z0-9_-]+)\/([a-zA-Z0-9_-]+)\/config$/.exec(m.topic);
  expect(match, m.topic).not.toBeNull();
  const component = match![1]!;
  const config = JSON.parse(m.payload) as Record<string, unknown>;
  for (const key of Object.keys(config)) expect(FIELDS[component], `${component}.${key}`).toContain(key);
  for (const key of REQUIRED[component]!) expect(config, `${component} needs ${key}`).toHaveProperty(key);
  const device = config.device as Record<string, unknown>;
  for (const key of Object.keys(device)) expect(DEVICE_FIELDS, `device.${key}`).toContain(key);
  expect(device.identifiers).toEqual(['tandem-lock-7']);
  // unique_id is what ties the entity to the device registry.
  expect(config.unique_id).toMatch(/^tandem_lock-7_[a-z_]+$/);
  if (component === 'binary_sensor') expect(BINARY_SENSOR_CLASSES).toContain(config.device_class);
  if (component === 'sensor') expect(SENSOR_CLASSES).toContain(config.device_class);
  if (config.device_class === 'enum') expect(Array.isArray(config.options)).toBe(true);
  return config;
}

const report = (state: LockStateReport['state'], uncertainty: number | null = 3): LockStateReport => ({
  lockId: 'lock-7',
  state,
  time: 1_800_000_020,
  uncertainty,
  revocationVersion: 13,
  outboxEpoch: 7,
  outboxSequence: 42,
});

describe('Home Assistant discovery payloads', () => {
  it('default: lock state as an enum sensor (no command topic), theft alarm, clock uncertainty, one device', () => {
    const msgs = discoveryMessages('lock-7', { remoteLocking: false });
    const configs = msgs.filter((m) => m.payload !== '');
    expect(configs.map((m) => m.topic).sort()).toEqual([
      'homeassistant/binary_sensor/tandem_lock-7/theft_alarm/config',
      'homeassistant/sensor/tandem_lock-7/clock_uncertainty/config',
      'homeassistant/sensor/tandem_lock-7/lock/config',
    ]);
    const byObject = Object.fromEntries(configs.map((m) => [m.topic.split('/')[3], checkConfig(m)]));
    expect(byObject.lock).toMatchObject({ device_class: 'enum', state_topic: 'tandem/ha/lock-7/state' });
    expect(byObject.lock!.options).toEqual(['locked', 'unlocked', 'alarm', 'jammed', 'fault', 'safe-mode']);
    expect(byObject.lock).not.toHaveProperty('command_topic');
    expect(byObject.theft_alarm).toMatchObject({
      device_class: 'tamper',
      payload_on: 'ON',
      payload_off: 'OFF',
    });
    expect(byObject.clock_uncertainty).toMatchObject({ device_class: 'duration', unit_of_measurement: 's' });
    // The lock-entity form is cleared, so no stale lock entity with a command topic survives.
    expect(msgs).toContainEqual({ topic: 'homeassistant/lock/tandem_lock-7/lock/config', payload: '' });
    for (const c of configs)
      expect(JSON.parse(c.payload).availability_topic).toBe('tandem/ha/lock-7/availability');
  });

  it('remote locking enabled: a lock entity with a command topic, and the sensor form cleared', () => {
    const msgs = discoveryMessages('lock-7', { remoteLocking: true });
    const lock = msgs.find((m) => m.topic === 'homeassistant/lock/tandem_lock-7/lock/config')!;
    const config = checkConfig(lock);
    expect(config).toMatchObject({
      command_topic: 'tandem/ha/lock-7/set',
      state_locked: 'LOCKED',
      state_unlocked: 'UNLOCKED',
      state_jammed: 'JAMMED',
    });
    expect(msgs).toContainEqual({ topic: 'homeassistant/sensor/tandem_lock-7/lock/config', payload: '' });
  });

  it('state: each Tandem state as the enum, the lock value and the alarm', () => {
    const cases: [LockStateReport['state'], string, string][] = [
      ['locked', 'LOCKED', 'OFF'],
      ['unlocked', 'UNLOCKED', 'OFF'],
      ['alarm', 'LOCKED', 'ON'],
      ['jammed', 'JAMMED', 'OFF'],
      ['fault', 'JAMMED', 'OFF'],
      ['safe-mode', 'JAMMED', 'OFF'],
    ];
    for (const [state, lock, alarm] of cases) {
      const m = stateMessage(report(state));
      expect(m.topic).toBe('tandem/ha/lock-7/state');
      expect(JSON.parse(m.payload)).toEqual({
        state,
        lock,
        alarm,
        uncertainty_s: 3,
        time: new Date(1_800_000_020_000).toISOString(),
        revocation: 13,
        battery: null,
      });
    }
    // [TANDEM-MQTT-14]: the level the lock signed, as it signed it.
    expect(JSON.parse(stateMessage({ ...report('locked'), battery: 87 }).payload).battery).toBe(87);
    expect(JSON.parse(stateMessage({ ...report('locked'), battery: 0 }).payload).battery).toBe(0);
    expect(JSON.parse(stateMessage(report('locked', null)).payload).uncertainty_s).toBeNull();
    expect(availabilityMessage('lock-7', false)).toEqual({
      topic: 'tandem/ha/lock-7/availability',
      payload: 'offline',
    });
  });

  it('the publisher announces a lock once, then states; a settings change announces again', () => {
    const out: HaMessage[] = [];
    let remote = false;
    const p = new HomeAssistantPublisher(
      (m) => out.push(m),
      () => ({ remoteLocking: remote }),
    );
    p.verifiedState(report('locked'));
    p.verifiedState(report('alarm'));
    expect(out.filter((m) => m.topic.endsWith('/config'))).toHaveLength(5);
    expect(out.filter((m) => m.topic === 'tandem/ha/lock-7/state')).toHaveLength(2);
    remote = true;
    p.settingsChanged('lock-7');
    expect(out.filter((m) => m.topic.endsWith('/config'))).toHaveLength(10);
  });

  it('battery ([TANDEM-MQTT-14]): a sensor only while the signed state carries a level, removed when it stops', () => {
    const none = discoveryMessages('lock-7', { remoteLocking: false });
    expect(none).toContainEqual({ topic: 'homeassistant/sensor/tandem_lock-7/battery/config', payload: '' });
    const msgs = discoveryMessages('lock-7', { remoteLocking: false }, { battery: true });
    const battery = msgs.find((m) => m.topic === 'homeassistant/sensor/tandem_lock-7/battery/config')!;
    expect(checkConfig(battery)).toMatchObject({
      device_class: 'battery',
      unit_of_measurement: '%',
      state_class: 'measurement',
      state_topic: 'tandem/ha/lock-7/state',
      unique_id: 'tandem_lock-7_battery',
    });

    const out: HaMessage[] = [];
    const p = new HomeAssistantPublisher((m) => out.push(m));
    const batteryConfigs = () =>
      out
        .filter((m) => m.topic === 'homeassistant/sensor/tandem_lock-7/battery/config')
        .map((m) => m.payload !== '');
    p.verifiedState(report('locked'));
    p.verifiedState({ ...report('locked'), battery: 55 });
    p.verifiedState({ ...report('locked'), battery: 54 });
    p.verifiedState(report('locked'));
    // Removed, announced once (not again for 54), removed when the gauge went away.
    expect(batteryConfigs()).toEqual([false, true, false]);
    const states = out
      .filter((m) => m.topic === 'tandem/ha/lock-7/state')
      .map((m) => JSON.parse(m.payload).battery);
    expect(states).toEqual([null, 55, 54, null]);
  });
});

describe('ACL for Home Assistant topics ([TANDEM-HA-4])', () => {
  const bridge = { kind: 'bridge' } as const;
  const lock = { kind: 'lock', lockId: 'lock-7' } as const;
  it('the bridge may publish exactly the Home Assistant topics; a lock none', () => {
    for (const m of discoveryMessages('lock-7', { remoteLocking: true })) {
      expect(isHomeAssistantTopic(m.topic)).toBe(true);
      expect(publishRefusal(bridge, m.topic)).toBeNull();
      expect(publishRefusal(lock, m.topic)).toMatch(/may not publish Home Assistant topic/);
    }
    for (const t of ['tandem/ha/lock-7/state', 'tandem/ha/lock-7/availability']) {
      expect(publishRefusal(bridge, t)).toBeNull();
      expect(publishRefusal(lock, t)).not.toBeNull();
    }
    // Nothing else new: other components, other nodes, the command topic, a wildcard, other trees.
    for (const t of [
      'homeassistant/switch/tandem_lock-7/lock/config',
      'homeassistant/lock/other_lock-7/lock/config',
      'homeassistant/lock/tandem_lock-7/lock/state',
      'tandem/ha/lock-7/set',
      'tandem/ha/+/state',
      'homeassistant/status',
      'tandem/ha/LOCK-7/state',
    ]) {
      expect(publishRefusal(bridge, t), t).not.toBeNull();
    }
    expect(mosquittoAcl()).toContain('topic write homeassistant/sensor/+/+/config');
    expect(mosquittoAcl()).not.toMatch(/topic write homeassistant\/#/);
  });

  it('[TANDEM-HA-5], [TANDEM-RCMD-8]: only the bridge reads the command topic, and only as tandem/ha/+/set; no lock does', () => {
    expect(subscribeRefusal(bridge, 'tandem/ha/+/set')).toBeNull();
    for (const f of ['tandem/ha/lock-7/set', 'tandem/ha/#'])
      expect(subscribeRefusal(bridge, f), f).not.toBeNull();
    for (const f of ['tandem/ha/lock-7/set', 'tandem/ha/+/set', 'tandem/ha/#']) {
      expect(subscribeRefusal(lock, f), f).not.toBeNull();
    }
    expect(mosquittoAcl()).toContain('topic read tandem/ha/+/set');
    expect(mosquittoAcl()).not.toMatch(/pattern \w+ tandem\/ha/);
  });
});

describe('the bridge publishes discovery and state from a verified state report', { timeout: 60_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-ha-'));
  let cloud: Cloud;
  const device = generateKeyPair('EdDSA');
  const seen: { topic: string; payload: string; retain: boolean }[] = [];
  beforeAll(async () => {
    cloud = await startCloud({
      dataDir: dir,
      mqtt: { port: 0 },
      brokerPersistence: { kind: 'memory' },
      beaconIntervalMs: 0,
      log: () => undefined,
    });
    await cloud.store.registerLock({
      lockId: 'lock-7',
      deviceKey: device.publicKey.raw,
      passwordHash: null,
      registeredAt: Date.now(),
    });
    cloud.broker.aedes.on('publish', (packet, client) => {
      if (client !== null && client !== undefined)
        seen.push({ topic: packet.topic, payload: packet.payload.toString(), retain: packet.retain });
    });
  });
  afterAll(async () => {
    await cloud?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function until(what: string, probe: () => boolean): Promise<void> {
    for (let i = 0; i < 400 && !probe(); i++) await new Promise((r) => setTimeout(r, 25));
    if (!probe())
      throw new Error(`timed out waiting for ${what}: ${JSON.stringify(seen.map((s) => s.topic))}`);
  }

  it('a forged state is ignored; a signed one is announced and published, retained', async () => {
    const forged = encodeLockState(report('unlocked'), generateKeyPair('EdDSA'));
    const publish = (topic: string, bytes: Uint8Array) =>
      new Promise<void>((resolve) =>
        cloud.broker.aedes.publish(
          { cmd: 'publish', topic, payload: Buffer.from(bytes), qos: 1, retain: true, dup: false },
          () => resolve(),
        ),
      );
    // As the broker delivers a lock's message to the bridge (the lock's own ACL is tested in acl tests).
    await publish(topicFor('state', 'lock-7'), forged);
    await publish(topicFor('state', 'lock-7'), encodeLockState({ ...report('alarm'), battery: 64 }, device));
    await until('the state for Home Assistant', () => seen.some((s) => s.topic === 'tandem/ha/lock-7/state'));
    const states = seen.filter((s) => s.topic === 'tandem/ha/lock-7/state');
    // Only the signed report: the forged "unlocked" never reached Home Assistant.
    expect(states.map((s) => JSON.parse(s.payload).state)).toEqual(['alarm']);
    // The battery level as the lock signed it ([TANDEM-MQTT-14]).
    expect(JSON.parse(states[0]!.payload).battery).toBe(64);
    expect(states[0]!.retain).toBe(true);
    const configs = seen.filter((s) => s.topic.startsWith('homeassistant/') && s.payload !== '');
    expect(configs.map((s) => s.topic).sort()).toEqual([
      'homeassistant/binary_sensor/tandem_lock-7/theft_alarm/config',
      'homeassistant/sensor/tandem_lock-7/battery/config',
      'homeassistant/sensor/tandem_lock-7/clock_uncertainty/config',
      'homeassistant/sensor/tandem_lock-7/lock/config',
    ]);
    for (const c of configs) checkConfig({ topic: c.topic, payload: c.payload });
    expect(seen).toContainEqual({ topic: 'tandem/ha/lock-7/availability', payload: 'online', retain: true });
    // The lock's will clears its state topic: Home Assistant is told it is offline.
    await publish(topicFor('state', 'lock-7'), new Uint8Array(0));
    await until('offline', () =>
      seen.some((s) => s.topic === 'tandem/ha/lock-7/availability' && s.payload === 'offline'),
    );
  });
});
