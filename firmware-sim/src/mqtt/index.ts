/** The lock's MQTT link (SPEC §9): client, backoff, credentials, and the outbox acknowledgement rule. */
export { LockMqttClient, MQTT_PEER } from './lock-mqtt-client.js';
export type {
  LinkState,
  LinkStatus,
  LockMqttClientEvents,
  LockMqttClientOptions,
  MqttConnect,
} from './lock-mqtt-client.js';
export { DEFAULT_BACKOFF, backoffCapMs, backoffDelayMs } from './backoff.js';
export type { BackoffPolicy } from './backoff.js';
export {
  MQTT_PASSWORD_BYTES,
  loadOrCreateMqttPassword,
  readMqttPassword,
  writeNewMqttPassword,
} from './credentials.js';
export { MqttLinkError } from './errors.js';
export type { MqttLinkErrorCode } from './errors.js';
export { applyOutboxAck } from './outbox-ack.js';
export type { OutboxAckContext } from './outbox-ack.js';
export { mqttPasswordPath, startLockMqtt } from './start-lock-mqtt.js';
export type { LockMqttDeps } from './start-lock-mqtt.js';
