/**
 * Options of the virtual radio, their ranges and their validation (one place, so that the constructor and
 * `configure()` refuse the same things with the same message).
 */
import type { RadioClock } from './clock.js';
import { VirtualRadioError } from './errors.js';
import type { ControllerProfile } from './profiles.js';

/** Options of {@link VirtualRadio}; all but `clock` and `seed` can be changed later with `configure()`. */
export interface VirtualRadioOptions {
  /** Time source (default {@link RealClock}). */
  clock?: RadioClock;
  /**
   * Link-layer data PDU payload in bytes, 27..251 (default 27: Core 4.1 without Data Length Extension,
   * as on the Pi Zero W; Vol 6 Part B 2.4). The controller splits each HCI ACL packet into PDUs of this size.
   */
  linkLayerPayload?: number;
  /** Connection interval in ms, 7.5..4000 (default: the Central host's maximum from LE Create Connection). */
  connectionIntervalMs?: number;
  /** Advertising interval in ms, 20..10240 (default: what the advertising host set, bleno: 100). */
  advertisingIntervalMs?: number;
  /**
   * Cap on the ATT MTU, 23..517 (default 517: no cap). The air rewrites the MTU field of every ATT Exchange
   * MTU Request and Response (Vol 3 Part F 3.4.2.1–2) to at most this value, like a phone whose stack never
   * offers more (iOS: 185); both sides then settle on min(client, server, cap).
   */
  attMtuCap?: number;
  /** One-way delay in ms between reception over the air and delivery to the receiving host (default 0). */
  latencyMs?: number;
  /**
   * Probability in [0, 1] that any one over-the-air packet is lost (default 0). A lost data PDU is not
   * acknowledged and is sent again at the next connection event, so loss shows as delay (Vol 6 Part B 4.5.9).
   */
  lossRate?: number;
  /** Seed of the loss and advertising-jitter generator (default 1). */
  seed?: number;
  /**
   * Supervision timeout in ms, 100..32000 (default: the Central host's value from LE Create Connection;
   * noble asks for 420). Without a good exchange for this long both sides get Disconnection Complete
   * with reason 0x08 Connection Timeout (Vol 6 Part B 4.5.2).
   */
  supervisionTimeoutMs?: number;
  /** Data PDUs per direction per connection event, 1..16 (default 1). */
  pdusPerEvent?: number;
  /** LE ACL buffer length reported by LE Read Buffer Size, 27..1021 (default 251). */
  aclBufferLength?: number;
  /** LE ACL buffer count reported by LE Read Buffer Size, 1..255 (default 8). */
  aclBufferCount?: number;
  /** RSSI in dBm reported for adverts and Read RSSI, -127..20 (default -60). */
  rssiDbm?: number;
  /** BD_ADDR per HCI device id (default "54:41:4e:00:HH:LL" from the id). */
  addresses?: Record<number, string>;
  /**
   * Named radio profile per HCI device id (`profiles.ts`: PI_ZERO_W, IPHONE, ...). A device with one
   * reports its version, data length support and ACL buffers, and as Central picks its own interval,
   * PDUs per event and ATT MTU; the radio-wide `connectionIntervalMs`, `attMtuCap` still win when set.
   */
  profiles?: Readonly<Record<number, ControllerProfile>>;
}

/** Every option but the fixed ones, with defaults filled in. */
export type Tunables = Required<
  Omit<
    VirtualRadioOptions,
    'clock' | 'seed' | 'addresses' | 'profiles' | 'connectionIntervalMs' | 'supervisionTimeoutMs'
  >
> &
  Pick<VirtualRadioOptions, 'connectionIntervalMs' | 'supervisionTimeoutMs'>;

function checkRange(name: string, v: number | undefined, min: number, max: number): void {
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
    throw new VirtualRadioError(
      'ERR_RADIO_INVALID_OPTION',
      `VirtualRadio option "${name}" must be a number in [${min}, ${max}], got ${String(v)}`,
    );
  }
}

/** Throws ERR_RADIO_INVALID_OPTION naming the first option outside its documented range. */
export function validate(o: Partial<VirtualRadioOptions>): void {
  checkRange('linkLayerPayload', o.linkLayerPayload, 27, 251);
  checkRange('connectionIntervalMs', o.connectionIntervalMs, 7.5, 4000);
  checkRange('advertisingIntervalMs', o.advertisingIntervalMs, 20, 10240);
  checkRange('attMtuCap', o.attMtuCap, 23, 517);
  checkRange('latencyMs', o.latencyMs, 0, 60_000);
  checkRange('lossRate', o.lossRate, 0, 1);
  checkRange('supervisionTimeoutMs', o.supervisionTimeoutMs, 100, 32_000);
  checkRange('pdusPerEvent', o.pdusPerEvent, 1, 16);
  checkRange('aclBufferLength', o.aclBufferLength, 27, 1021);
  checkRange('aclBufferCount', o.aclBufferCount, 1, 255);
  checkRange('rssiDbm', o.rssiDbm, -127, 20);
}

/** Throws ERR_RADIO_INVALID_OPTION naming the profile and field outside its range. */
export function validateProfiles(profiles: Readonly<Record<number, ControllerProfile>> | undefined): void {
  for (const [devId, p] of Object.entries(profiles ?? {})) {
    const field = (name: string): string => `profiles[${devId}].${name}`;
    checkRange(field('coreVersion'), p.coreVersion, 0x06, 0x0e);
    checkRange(field('maxDataOctets'), p.maxDataOctets, 27, 251);
    checkRange(field('aclBufferLength'), p.aclBufferLength, 27, 1021);
    checkRange(field('aclBufferCount'), p.aclBufferCount, 1, 255);
    checkRange(field('connectionIntervalMs'), p.connectionIntervalMs, 7.5, 4000);
    checkRange(field('pdusPerEvent'), p.pdusPerEvent, 1, 16);
    checkRange(field('attMtu'), p.attMtu, 23, 517);
    const policy = p.parameterUpdates;
    if (policy !== undefined) {
      if (!['apple', 'core', 'reject'].includes(policy.rules)) {
        throw new VirtualRadioError(
          'ERR_RADIO_INVALID_OPTION',
          `VirtualRadio option "${field('parameterUpdates.rules')}" must be apple, core or reject, got ${String(policy.rules)}`,
        );
      }
      // Vol 6 Part B 4.5.1: connInterval is 7.5 ms to 4 s.
      checkRange(field('parameterUpdates.minIntervalMs'), policy.minIntervalMs, 7.5, 4000);
    }
  }
}
