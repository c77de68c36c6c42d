/**
 * Home Assistant MQTT discovery for Tandem locks (issue 11 §3, [TANDEM-HA-1] to [TANDEM-HA-4]): the bridge
 * publishes, from each lock's *signed* state report ([TANDEM-MQTT-10], verified with the lock's device key
 * before anything is published), one Home Assistant device per lock with these entities:
 *
 * | component | object | what | Home Assistant platform |
 * | --- | --- | --- | --- |
 * | `sensor` (enum) or `lock` | `lock` | locked, unlocked, alarm, jammed, fault, safe-mode | the lock's state; a `lock` entity only where the owner enabled remote locking |
 * | `binary_sensor` | `theft_alarm` | on while the lock is in `alarm` | device class `tamper` |
 * | `sensor` | `clock_uncertainty` | seconds the lock's clock may be off; unknown after a reboot until a beacon ([TANDEM-TIME-6]) | device class `duration`, unit `s` |
 * | `sensor` | `battery` | the charge the lock's fuel gauge read, from the signed state ([TANDEM-MQTT-14]); announced only while the lock reports one | device class `battery`, unit `%` |
 *
 * Why a `sensor` and not a `lock` by default: Home Assistant's MQTT lock platform *requires* `command_topic`
 * (lock.mqtt documentation, "command_topic ... required: true"), and a lock entity without one is refused
 * at discovery. Remote locking is off unless the owner turns it on ([TANDEM-HA-2]: PATCH /locks/{id}, stored by
 * the cloud), so by default the state is an enum sensor; with remote locking on it is a `lock` entity with a
 * command topic. Pressing Lock there makes the bridge send the lock a remote command signed by the issuer
 * ([TANDEM-HA-5], SPEC §9.11, remote-command.ts), only while remote locking is on; the entity (not optimistic)
 * keeps showing the state the lock signed, so it shows `LOCKED` once the lock has locked and said so.
 * A bike lock is never *unlocked* from Home Assistant: unlocking needs a rider's signed token and proof of
 * possession at the lock (SPEC §5.7), which no MQTT message can stand in for.
 *
 * The battery sensor exists only for a lock whose signed state carries a level ([TANDEM-MQTT-14]): a board
 * without a gauge reports none, and Home Assistant then shows no battery rather than a made-up one.
 *
 * Topics (retained, so that Home Assistant sees the last state at once after it restarts):
 *
 * - `homeassistant/<component>/tandem_<lock>/<object>/config`: discovery, JSON (published once per bridge
 *   start for each lock it has seen, and again when the remote-locking setting changes);
 * - `tandem/ha/<lock>/state`: JSON `{ "state", "lock", "alarm", "uncertainty_s", "time", "revocation",
 *   "battery" }` (`battery` null when the lock reported none);
 * - `tandem/ha/<lock>/availability`: `online` after a verified state, `offline` when the lock's clean stop
 *   or its will clears its state topic ([TANDEM-MQTT-WILL]).
 *
 * Home Assistant connects to the same broker with a user of its own ({@link HOME_ASSISTANT_USERNAME}) that
 * may read `homeassistant/#` and `tandem/ha/#` and publish only `tandem/ha/<lock>/set` ([TANDEM-RCMD-8],
 * acl.ts, which also writes Mosquitto's lines). The bridge may publish exactly these topics and nothing else
 * new ([TANDEM-MQTT-4]).
 */
import type { LockStateReport } from '../../protocol/src/mqtt.js';
import { isLockId } from '../../protocol/src/index.js';

/**
 * Home Assistant's own broker user ([TANDEM-HA-4]): a `.` keeps it from ever being a lock id. It reads
 * discovery and states and publishes only `tandem/ha/L/set` ([TANDEM-RCMD-8]).
 */
export const HOME_ASSISTANT_USERNAME = 'tandem.homeassistant';

/** Home Assistant's default discovery prefix. */
export const HA_DISCOVERY_PREFIX = 'homeassistant';
/** Where the bridge publishes the states Home Assistant reads (outside `tandem/v1`: not a lock topic). */
export const HA_STATE_ROOT = 'tandem/ha';

/** What the owner has chosen for Home Assistant; remote locking is off by default ([TANDEM-HA-2]). */
export interface HaLockSettings {
  readonly remoteLocking: boolean;
}

/** What the lock's last verified state says it has ([TANDEM-MQTT-14]). */
export interface HaLockFeatures {
  readonly battery: boolean;
}

/** One MQTT message to publish (retained). */
export interface HaMessage {
  readonly topic: string;
  readonly payload: string;
}

/** The Home Assistant topics of one lock. */
export function haTopics(lockId: string): {
  readonly state: string;
  readonly availability: string;
  readonly command: string;
} {
  if (!isLockId(lockId)) throw new TypeError(`not a lock id: ${JSON.stringify(lockId)}`);
  return {
    state: `${HA_STATE_ROOT}/${lockId}/state`,
    availability: `${HA_STATE_ROOT}/${lockId}/availability`,
    command: `${HA_STATE_ROOT}/${lockId}/set`,
  };
}

/** The discovery node id: Home Assistant allows `[a-zA-Z0-9_-]` there; lock ids are `[a-z0-9-]`. */
export function haNodeId(lockId: string): string {
  return `tandem_${lockId}`;
}

/** The states the enum sensor may show (the lock's reported states, [TANDEM-GATT-9]). */
export const HA_LOCK_STATES = ['locked', 'unlocked', 'alarm', 'jammed', 'fault', 'safe-mode'] as const;

/**
 * The `lock` entity's value for a Tandem state: Home Assistant's lock knows LOCKED, UNLOCKED, JAMMED (and
 * LOCKING, UNLOCKING). An alarm is raised while locked; a fault or safe mode is a lock that stays locked and
 * refuses to act ("the lock fails locked"), which Home Assistant shows as jammed: it will not move.
 */
function lockValue(state: LockStateReport['state']): 'LOCKED' | 'UNLOCKED' | 'JAMMED' {
  switch (state) {
    case 'unlocked':
      return 'UNLOCKED';
    case 'jammed':
    case 'fault':
    case 'safe-mode':
      return 'JAMMED';
    default:
      return 'LOCKED';
  }
}

/** The discovery messages of one lock ([TANDEM-HA-1]); an empty payload removes an entity. */
export function discoveryMessages(
  lockId: string,
  settings: HaLockSettings,
  features: HaLockFeatures = { battery: false },
): HaMessage[] {
  const t = haTopics(lockId);
  const node = haNodeId(lockId);
  const device = {
    identifiers: [`tandem-${lockId}`],
    name: `Tandem ${lockId}`,
    manufacturer: 'Tandem',
    model: 'Shareable bike lock',
  };
  const common = {
    device,
    availability_topic: t.availability,
    payload_available: 'online',
    payload_not_available: 'offline',
    state_topic: t.state,
    qos: 1,
  };
  const cfg = (component: string, object: string, body: Record<string, unknown>): HaMessage => ({
    topic: `${HA_DISCOVERY_PREFIX}/${component}/${node}/${object}/config`,
    payload: JSON.stringify({
      ...common,
      unique_id: `tandem_${lockId}_${object}`,
      object_id: `${node}_${object}`,
      ...body,
    }),
  });
  const remove = (component: string, object: string): HaMessage => ({
    topic: `${HA_DISCOVERY_PREFIX}/${component}/${node}/${object}/config`,
    payload: '',
  });
  const state = settings.remoteLocking
    ? cfg('lock', 'lock', {
        name: 'Lock',
        command_topic: t.command,
        // [TANDEM-HA-2]: locking only. Home Assistant requires an unlock payload to exist; the bridge refuses it
        // ([TANDEM-RCMD-7]) and no remote command can carry it ([TANDEM-RCMD-2]).
        payload_lock: 'LOCK',
        payload_unlock: 'UNLOCK',
        state_locked: 'LOCKED',
        state_unlocked: 'UNLOCKED',
        state_jammed: 'JAMMED',
        value_template: '{{ value_json.lock }}',
        optimistic: false,
        retain: false,
      })
    : cfg('sensor', 'lock', {
        name: 'Lock',
        device_class: 'enum',
        options: [...HA_LOCK_STATES],
        value_template: '{{ value_json.state }}',
        icon: 'mdi:bike',
      });
  return [
    state,
    // The other form of the state entity is removed, so that switching remote locking leaves no ghost.
    settings.remoteLocking ? remove('sensor', 'lock') : remove('lock', 'lock'),
    cfg('binary_sensor', 'theft_alarm', {
      name: 'Theft alarm',
      device_class: 'tamper',
      value_template: '{{ value_json.alarm }}',
      payload_on: 'ON',
      payload_off: 'OFF',
    }),
    cfg('sensor', 'clock_uncertainty', {
      name: 'Clock uncertainty',
      device_class: 'duration',
      unit_of_measurement: 's',
      state_class: 'measurement',
      entity_category: 'diagnostic',
      // null after a reboot ([TANDEM-TIME-6]): "None" is what Home Assistant resets to unknown.
      value_template: '{{ value_json.uncertainty_s if value_json.uncertainty_s is not none else "None" }}',
    }),
    // [TANDEM-MQTT-14]: only while the lock reports a level; removed (no ghost entity) when it does not.
    features.battery
      ? cfg('sensor', 'battery', {
          name: 'Battery',
          device_class: 'battery',
          unit_of_measurement: '%',
          state_class: 'measurement',
          entity_category: 'diagnostic',
          value_template: '{{ value_json.battery if value_json.battery is not none else "None" }}',
        })
      : remove('sensor', 'battery'),
  ];
}

/** The state message for a verified state report ([TANDEM-HA-3]). */
export function stateMessage(report: LockStateReport): HaMessage {
  return {
    topic: haTopics(report.lockId).state,
    payload: JSON.stringify({
      state: report.state,
      lock: lockValue(report.state),
      alarm: report.state === 'alarm' ? 'ON' : 'OFF',
      uncertainty_s: report.uncertainty,
      time: new Date(report.time * 1000).toISOString(),
      revocation: report.revocationVersion,
      battery: report.battery ?? null,
    }),
  };
}

/** The availability message ([TANDEM-HA-3]). */
export function availabilityMessage(lockId: string, online: boolean): HaMessage {
  return { topic: haTopics(lockId).availability, payload: online ? 'online' : 'offline' };
}

/**
 * True for a topic the bridge publishes for Home Assistant ([TANDEM-HA-4]): a discovery config of one of the
 * three components under a `tandem_<lock>` node, or a lock's state or availability under `tandem/ha/`.
 */
export function isHomeAssistantTopic(topic: string): boolean {
  const d = /^homeassistant\/(lock|sensor|binary_sensor)\/tandem_([a-z0-9-]+)\/([a-z_]+)\/config$/.exec(
    topic,
  );
  if (d !== null) return isLockId(d[2]!);
  const s = /^tandem\/ha\/([a-z0-9-]+)\/(state|availability)$/.exec(topic);
  return s !== null && isLockId(s[1]!);
}

/** How the bridge publishes: retained, at QoS 1. */
export type HaPublish = (message: HaMessage) => void;

/** The owner's settings of a lock, from memory (tests) or the store (the cloud: a promise). */
export type HaSettingsSource = (lockId: string) => HaLockSettings | Promise<HaLockSettings>;

/**
 * Keeps Home Assistant in step with the locks the bridge hears from: discovery once per lock (and again
 * after a settings change or when the lock starts or stops reporting a battery), then a state message per
 * verified state report. With settings from the store, each lock's messages keep their order (one chain of
 * promises per lock).
 */
export class HomeAssistantPublisher {
  readonly #publish: HaPublish;
  readonly #settings: HaSettingsSource;
  readonly #announced = new Map<string, string>();
  readonly #features = new Map<string, HaLockFeatures>();
  readonly #queues = new Map<string, Promise<void>>();

  constructor(publish: HaPublish, settings: HaSettingsSource = () => ({ remoteLocking: false })) {
    this.#publish = publish;
    this.#settings = settings;
  }

  /** Called with a state report whose signature the bridge has verified. */
  verifiedState(report: LockStateReport): void {
    this.#withSettings(report.lockId, (settings) => {
      this.#features.set(report.lockId, { battery: report.battery !== undefined });
      this.#announce(report.lockId, settings);
      this.#publish(availabilityMessage(report.lockId, true));
      this.#publish(stateMessage(report));
    });
  }

  /** Called when the lock's state topic was cleared (its clean stop or its will). */
  offline(lockId: string): void {
    if (!isLockId(lockId)) return;
    this.#withSettings(lockId, (settings) => {
      this.#announce(lockId, settings);
      this.#publish(availabilityMessage(lockId, false));
    });
  }

  /** Publishes discovery again for a lock whose settings changed. */
  settingsChanged(lockId: string): void {
    if (!isLockId(lockId)) return;
    this.#withSettings(lockId, (settings) => {
      this.#announced.delete(lockId);
      this.#announce(lockId, settings);
    });
  }

  /** Resolves once every message queued so far for `lockId` went out (tests, orderly shutdown). */
  async settled(lockId: string): Promise<void> {
    await this.#queues.get(lockId);
  }

  /** Runs `then` with the lock's settings: at once when they are at hand, else after what is queued. */
  #withSettings(lockId: string, then: (settings: HaLockSettings) => void): void {
    const queued = this.#queues.get(lockId);
    const got = queued === undefined ? this.#settings(lockId) : undefined;
    if (got !== undefined && !(got instanceof Promise)) {
      then(got);
      return;
    }
    // Settings that cannot be read are the defaults: remote locking off ([TANDEM-HA-2]), never on by error.
    const next = (queued ?? Promise.resolve())
      .then(() => got ?? this.#settings(lockId))
      .catch((): HaLockSettings => ({ remoteLocking: false }))
      .then(then)
      .catch(() => undefined);
    this.#queues.set(lockId, next);
    void next.then(() => {
      if (this.#queues.get(lockId) === next) this.#queues.delete(lockId);
    });
  }

  #announce(lockId: string, settings: HaLockSettings): void {
    const features = this.#features.get(lockId) ?? { battery: false };
    const key = JSON.stringify([settings, features]);
    if (this.#announced.get(lockId) === key) return;
    for (const m of discoveryMessages(lockId, settings, features)) this.#publish(m);
    this.#announced.set(lockId, key);
  }
}
