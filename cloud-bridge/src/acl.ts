/**
 * Who may publish and subscribe to what ([TANDEM-MQTT-4]), as pure functions that the aedes hooks call, and
 * the same policy written out as Mosquitto's ACL file, so that both brokers enforce one rule set.
 *
 * - A lock, authenticated as lock id L, publishes only `tandem/v1/lock/L/{state,alert,audit,revocation-ack,
 *   time-request,anchor-ack}` and subscribes only `tandem/v1/lock/L/{revocation,outbox-ack,beacon,anchor}` and
 *   `tandem/v1/time`.
 * - The bridge ({@link BRIDGE_USERNAME}) publishes the cloud → lock topics of every lock and `tandem/v1/time`,
 *   and subscribes the lock → cloud topics of every lock (`+` in the lock id level, optionally under a
 *   `$share/<group>/` prefix where the broker has MQTT 5 shared subscriptions).
 * - The bridge also publishes Home Assistant discovery and state topics ([TANDEM-HA-4], home-assistant.ts):
 *   `homeassistant/{lock,sensor,binary_sensor}/tandem_L/<object>/config`, `tandem/ha/L/{state,availability}`.
 * - Home Assistant ({@link HOME_ASSISTANT_USERNAME}) reads `homeassistant/#` and `tandem/ha/#` and publishes
 *   only its command topic `tandem/ha/L/set` ([TANDEM-RCMD-8]); the bridge subscribes `tandem/ha/+/set` and
 *   turns a LOCK there into a signed remote command on `tandem/v1/lock/L/command` (remote-command.ts), which
 *   only the bridge may publish and only lock L may subscribe.
 * - Anyone else (anonymous, unknown) gets nothing; authentication already refuses them.
 */
import type { LockTopicKind } from '../../protocol/src/mqtt.js';
import { TOPIC_ROOT, TOPIC_POLICY, parseTopic } from '../../protocol/src/mqtt.js';
import { isLockId } from '../../protocol/src/index.js';
import { BRIDGE_USERNAME } from './credentials.js';
import { CloudError } from './errors.js';
import { HOME_ASSISTANT_USERNAME, isHomeAssistantTopic } from './home-assistant.js';
import { HA_COMMAND_FILTER, haCommandLockId } from './remote-command.js';

export { HOME_ASSISTANT_USERNAME };

/** The identity a connection authenticated as. */
export type Identity =
  | { readonly kind: 'lock'; readonly lockId: string }
  | { readonly kind: 'bridge' }
  | { readonly kind: 'home-assistant' };

/** How an identity is named in logs. */
export function identityName(who: Identity | undefined): string {
  if (who === undefined) return '(unknown)';
  return who.kind === 'lock' ? who.lockId : who.kind;
}

/** Lock → cloud kinds: what a lock publishes and the bridge subscribes ([TANDEM-MQTT-1]). */
export const LOCK_PUBLISHES: readonly LockTopicKind[] = [
  'state',
  'alert',
  'audit',
  'revocation-ack',
  'time-request',
  'anchor-ack',
];
/** Cloud → lock kinds: what a lock subscribes and only the bridge publishes ([TANDEM-MQTT-4]). */
export const LOCK_SUBSCRIBES: readonly LockTopicKind[] = [
  'revocation',
  'outbox-ack',
  'beacon',
  'anchor',
  'command',
];

/** Why a publish or subscribe is refused, or null when allowed. */
export function publishRefusal(who: Identity, topic: string): string | null {
  // [TANDEM-RCMD-8]: Home Assistant publishes its command topic for one lock, and nothing else.
  if (who.kind === 'home-assistant') {
    return haCommandLockId(topic) !== undefined
      ? null
      : `Home Assistant may publish only tandem/ha/{lock id}/set, not ${topic}`;
  }
  // [TANDEM-HA-4]: the bridge also publishes Home Assistant's discovery and state topics; nobody else does.
  if (isHomeAssistantTopic(topic)) {
    return who.kind === 'bridge' ? null : `lock ${who.lockId} may not publish Home Assistant topic ${topic}`;
  }
  let parsed;
  try {
    parsed = parseTopic(topic);
  } catch (e) {
    return `topic outside the Tandem tree (${(e as Error).message})`;
  }
  const from = TOPIC_POLICY[parsed.kind].from;
  if (who.kind === 'bridge')
    return from === 'cloud' ? null : `the bridge may not publish lock topic ${topic}`;
  if (from !== 'lock' || parsed.kind === 'time')
    return `lock ${who.lockId} may not publish cloud topic ${topic}`;
  if (parsed.lockId !== who.lockId)
    return `lock ${who.lockId} may not publish to lock ${parsed.lockId}'s topic`;
  return null;
}

/** Strips a `$share/<group>/` prefix (MQTT 5.0 §4.8.2); null when malformed. */
function unshare(filter: string): string | null {
  if (!filter.startsWith('$share/')) return filter;
  const rest = filter.slice('$share/'.length);
  const slash = rest.indexOf('/');
  if (slash <= 0) return null;
  const group = rest.slice(0, slash);
  if (/[+#]/.test(group)) return null;
  return rest.slice(slash + 1);
}

/** Why a subscription to `filter` is refused, or null when allowed. */
export function subscribeRefusal(who: Identity, filter: string): string | null {
  if (who.kind === 'home-assistant') {
    // [TANDEM-HA-4]: discovery and the states the bridge publishes; never a tandem/v1 topic.
    return /^(homeassistant|tandem\/ha)(\/|$)/.test(filter)
      ? null
      : `Home Assistant may subscribe only homeassistant/# and tandem/ha/#, not ${filter}`;
  }
  if (who.kind === 'bridge') {
    const f = unshare(filter);
    if (f === null) return `malformed shared subscription ${filter}`;
    // [TANDEM-RCMD-7]: Home Assistant's command topic, which the bridge turns into signed remote commands.
    if (f === HA_COMMAND_FILTER) return null;
    const m = /^tandem\/v1\/lock\/\+\/([a-z-]+)$/.exec(f);
    if (m !== null && (LOCK_PUBLISHES as readonly string[]).includes(m[1]!)) return null;
    // The bridge may also follow one lock's lock → cloud topics (a partitioned instance can).
    try {
      const p = parseTopic(f);
      if (p.kind !== 'time' && TOPIC_POLICY[p.kind].from === 'lock') return null;
    } catch {
      // fall through to the refusal
    }
    return `the bridge may subscribe only lock → cloud topics, not ${filter}`;
  }
  if (filter === `${TOPIC_ROOT}/time`) return null;
  let parsed;
  try {
    // A filter with a wildcard is refused here too: parseTopic accepts no `+` or `#` ([TANDEM-MQTT-2]).
    parsed = parseTopic(filter);
  } catch (e) {
    return `filter outside the lock's topics (${(e as Error).message})`;
  }
  if (parsed.kind === 'time' || !LOCK_SUBSCRIBES.includes(parsed.kind)) {
    return `lock ${who.lockId} may not subscribe ${filter}`;
  }
  if (parsed.lockId !== who.lockId)
    return `lock ${who.lockId} may not subscribe lock ${parsed.lockId}'s topic`;
  return null;
}

/** The identity behind an MQTT user name, or undefined for one that is neither a lock id nor the bridge. */
export function identityOf(username: string | undefined): Identity | undefined {
  if (username === BRIDGE_USERNAME) return { kind: 'bridge' };
  if (username === HOME_ASSISTANT_USERNAME) return { kind: 'home-assistant' };
  if (username !== undefined && isLockId(username)) return { kind: 'lock', lockId: username };
  return undefined;
}

/**
 * The policy as a Mosquitto ACL file (mosquitto.conf(5) `acl_file`): `pattern` lines with `%u` (the user
 * name, which Mosquitto refuses to substitute if it holds `+`, `#` or `/`) for every lock, `user` lines for
 * the bridge. Mosquitto denies whatever no line grants.
 */
export function mosquittoAcl(): string {
  const lines = [
    '# Tandem MQTT ACL ([TANDEM-MQTT-4]); generated by cloud-bridge/src/acl.ts, do not edit by hand.',
    '# Each lock (user name = lock id) publishes its own lock -> cloud topics and reads its cloud -> lock ones.',
    ...LOCK_PUBLISHES.map((k) => `pattern write ${TOPIC_ROOT}/lock/%u/${k}`),
    ...LOCK_SUBSCRIBES.map((k) => `pattern read ${TOPIC_ROOT}/lock/%u/${k}`),
    `pattern read ${TOPIC_ROOT}/time`,
    '',
    '# The bridge reads every lock -> cloud topic and writes every cloud -> lock topic.',
    `user ${BRIDGE_USERNAME}`,
    ...LOCK_PUBLISHES.map((k) => `topic read ${TOPIC_ROOT}/lock/+/${k}`),
    ...LOCK_SUBSCRIBES.map((k) => `topic write ${TOPIC_ROOT}/lock/+/${k}`),
    `topic write ${TOPIC_ROOT}/time`,
    "# ... and Home Assistant discovery and state ([TANDEM-HA-4]), and reads Home Assistant's Lock button",
    '# ([TANDEM-RCMD-7]), which it turns into a signed command on tandem/v1/lock/L/command.',
    `topic read ${HA_COMMAND_FILTER}`,
    'topic write homeassistant/lock/+/+/config',
    'topic write homeassistant/sensor/+/+/config',
    'topic write homeassistant/binary_sensor/+/+/config',
    'topic write tandem/ha/+/state',
    'topic write tandem/ha/+/availability',
    '',
    '# Home Assistant reads discovery and states and publishes only its command topic ([TANDEM-RCMD-8]).',
    `user ${HOME_ASSISTANT_USERNAME}`,
    'topic read homeassistant/#',
    'topic read tandem/ha/#',
    `topic write ${HA_COMMAND_FILTER}`,
    '',
  ];
  return lines.join('\n');
}

/** A Mosquitto `password_file` from `user → $7$ record` pairs. */
export function mosquittoPasswordFile(records: Iterable<readonly [string, string]>): string {
  let out = '';
  for (const [user, record] of records) {
    if (!(user === BRIDGE_USERNAME || user === HOME_ASSISTANT_USERNAME || isLockId(user)))
      throw new CloudError('ERR_CLOUD_CREDENTIAL', `not a Tandem MQTT user name: ${JSON.stringify(user)}`);
    out += `${user}:${record}\n`;
  }
  return out;
}
