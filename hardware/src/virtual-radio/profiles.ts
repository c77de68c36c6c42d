/**
 * Named radio profiles: what one device's Bluetooth controller (and, for a phone, its stack) does on the
 * air, each with the sources it is taken from. Give them to {@link VirtualRadio} by HCI device id
 * (`profiles: { 0: PI_ZERO_W, 1: IPHONE }`); a device without a profile behaves as the radio-wide options
 * say (today's pessimistic model: one PDU per connection event, `linkLayerPayload` octets per PDU).
 *
 * What the model leaves out (so what it cannot say about a real phone): time within a connection event
 * (every exchange of an event happens at its anchor; one 251-octet PDU takes 2.1 ms on the 1M PHY, 27
 * octets 0.33 ms, Vol 6 Part B 2.1 and 4.5.1), radio scheduling conflicts with Wi-Fi on the shared
 * antenna of the CYW4343x, and how many PDUs a real phone puts in one event under load (Apple and Google
 * publish no number; `pdusPerEvent` below is an assumption, marked as such).
 */
import type { ParameterUpdatePolicy } from './signalling.js';

/** One device's controller (and, for a Central, the choices its stack makes). */
export interface ControllerProfile {
  /** Short name, used in bench rows: `pi-zero-w`, `iphone`, ... */
  readonly name: string;
  /** One line: what device this is. */
  readonly description: string;
  /** Where each number comes from. */
  readonly sources: readonly string[];
  /**
   * HCI_Version / LMP_PAL_Version reported by Read Local Version Information (Vol 4 Part E 7.4.1;
   * Assigned Numbers 2.1): 0x07 Core 4.1, 0x08 Core 4.2, 0x09 Core 5.0.
   */
  readonly coreVersion: number;
  /**
   * Largest link-layer data PDU payload it supports (supportedMaxTxOctets / RxOctets, Vol 6 Part B 4.5.10):
   * 27 without Data Length Extension (Core 4.1 and earlier), up to 251 with it (Core 4.2+, LE Read Local
   * Supported Features bit 5). A connection starts at 27 either way and is raised only by the Data
   * Length Update procedure (Vol 6 Part B 5.1.9), to what both ends support.
   */
  readonly maxDataOctets: number;
  /**
   * Starts the Data Length Update procedure on its own once connected (the controller may, Vol 6 Part B
   * 5.1.9), as iOS and Android controllers do; otherwise only its host's LE Set Data Length (Vol 4 Part E
   * 7.8.33) starts it.
   */
  readonly initiatesDataLength: boolean;
  /** LE ACL buffers reported by LE Read Buffer Size (Vol 4 Part E 7.8.2): octets per packet, packets. */
  readonly aclBufferLength: number;
  readonly aclBufferCount: number;
  /** As Central: the connection interval (ms) it uses, whatever its host asks (phones choose themselves). */
  readonly connectionIntervalMs?: number;
  /**
   * Data PDUs it exchanges per direction in one connection event, using the More Data bit (Vol 6 Part B
   * 4.5.6); a connection uses the smaller of its two ends' values.
   */
  readonly pdusPerEvent?: number;
  /** As Central: the largest ATT MTU its stack offers in Exchange MTU (Vol 3 Part F 3.4.2.1). */
  readonly attMtu?: number;
  /**
   * As Central: how its stack answers a Peripheral's L2CAP Connection Parameter Update Request (Vol 3
   * Part A 4.20), see signalling.ts. Without one the request goes up to the host (noble, which answers
   * nothing on Linux), as on a Linux central whose HCI socket the app owns.
   */
  readonly parameterUpdates?: ParameterUpdatePolicy;
}

/** Raspberry Pi Zero W lock board: Cypress/Broadcom BCM43438 (CYW43438), Bluetooth 4.1, no DLE. */
export const PI_ZERO_W: ControllerProfile = Object.freeze({
  name: 'pi-zero-w',
  description: 'Raspberry Pi Zero W (BCM43438 / CYW43438, Bluetooth 4.1): 27-octet link layer, no DLE',
  sources: [
    'Cypress CYW43438 datasheet: Bluetooth 4.1 (+EDR); LE Data Packet Length Extension is a 4.2 feature',
    'Raspberry Pi Zero W product brief: "802.11 b/g/n wireless LAN, Bluetooth 4.1, Bluetooth Low Energy"',
    'Bluetooth Core 4.1, Vol 6 Part B 2.4: data channel PDU payload at most 27 octets',
    'ACL buffers 1021 octets x 8: what `hciconfig` shows (ACL MTU 1021:8) on BCM43438 boards, taken for LE; ' +
      'not measured here on a Zero W',
  ],
  coreVersion: 0x07,
  maxDataOctets: 27,
  initiatesDataLength: false,
  aclBufferLength: 1021,
  aclBufferCount: 8,
});

/** Raspberry Pi Zero 2 W lock board: CYW43436, Bluetooth 4.2 with Data Length Extension. */
export const PI_ZERO_2_W: ControllerProfile = Object.freeze({
  name: 'pi-zero-2-w',
  description: 'Raspberry Pi Zero 2 W (CYW43436, Bluetooth 4.2): Data Length Extension up to 251 octets',
  sources: [
    'Raspberry Pi Zero 2 W product brief: "Bluetooth 4.2, Bluetooth Low Energy (BLE)"',
    'Bluetooth Core 4.2, Vol 6 Part B 4.5.10 and 5.1.9: Data Length Update procedure, up to 251 octets',
    'Bluetooth Core 4.2, Vol 4 Part E 7.8.33 LE Set Data Length, 7.7.65.7 LE Data Length Change event',
    'ACL buffers: as the Zero W (same Cypress firmware family; not measured here on a Zero 2 W)',
  ],
  coreVersion: 0x08,
  maxDataOctets: 251,
  initiatesDataLength: false,
  aclBufferLength: 1021,
  aclBufferCount: 8,
});

/** A typical recent iPhone as the Central. */
export const IPHONE: ControllerProfile = Object.freeze({
  name: 'iphone',
  description:
    'typical iPhone (iOS 16+): 30 ms connection interval, several PDUs per event, ATT MTU 185, DLE 251',
  sources: [
    'Apple Accessory Design Guidelines for Apple Devices, Bluetooth Low Energy, "Connection Parameters": ' +
      'interval min >= 15 ms, min + 15 ms <= max; iOS connects at 30 ms unless the accessory asks (observed default)',
    'Apple WWDC 2017 session 712 "What\'s New in Core Bluetooth": ATT MTU 185 and DLE 251 from iPhone 7 / ' +
      'iOS 10; several packets per connection event',
    'pdusPerEvent 4: an assumption (Apple publishes no number; throughput measurements imply 4-7)',
    'Connection Parameter Update Requests: judged by the Accessory Design Guidelines rules (R15+: latency ' +
      '<= 30, timeout 2-6 s, min a multiple of 15 ms >= 15 ms, min + 15 ms <= max or min == max == 15 ms, ' +
      'max x (latency + 1) <= 2 s and x 3 < timeout); an accepted 15-30 ms request gets 15 ms (an ' +
      'assumption: the guidelines say only that "some devices" scale min == max == 15 ms to 30 ms)',
  ],
  coreVersion: 0x09,
  maxDataOctets: 251,
  initiatesDataLength: true,
  aclBufferLength: 251,
  aclBufferCount: 8,
  connectionIntervalMs: 30,
  pdusPerEvent: 4,
  attMtu: 185,
  parameterUpdates: { rules: 'apple' as const, minIntervalMs: 15 },
});

/**
 * The same iPhone connecting at 15 ms from the start: the bound of what the lock's Connection Parameter
 * Update Request ([TANDEM-GATT-18]) can buy, since an update takes effect only some events after it is
 * asked for (Vol 6 Part B 5.1.1: the instant is at least 6 events ahead).
 */
export const IPHONE_15MS: ControllerProfile = Object.freeze({
  ...IPHONE,
  name: 'iphone-15ms',
  description: 'the iPhone profile at 15 ms from the connection on (the bound of a 15-30 ms request)',
  connectionIntervalMs: 15,
});

/** A typical recent Android phone as the Central. */
export const ANDROID: ControllerProfile = Object.freeze({
  name: 'android',
  description:
    'typical Android phone (Android 10+): 15 ms connection interval, several PDUs per event, DLE 251',
  sources: [
    'Android BluetoothGatt.requestConnectionPriority(CONNECTION_PRIORITY_HIGH): interval 11.25-15 ms; ' +
      'recent Android stacks use 7.5 ms while discovering services (AOSP system/bt, BTM_BLE_CONN_INT_MIN)',
    'Android 14 requests ATT MTU 517; bleno and noble offer at most 256 (bleno gatt.js maxMtu, noble ' +
      'gatt.js _desired_mtu), so the MTU is 256',
    'pdusPerEvent 4: an assumption (controller-dependent; not published)',
    'Connection Parameter Update Requests: any the Core spec allows is passed to the controller (AOSP ' +
      'l2c_ble.cc); the grant of the shortest interval in range, from 7.5 ms, is an assumption',
  ],
  coreVersion: 0x09,
  maxDataOctets: 251,
  initiatesDataLength: true,
  aclBufferLength: 251,
  aclBufferCount: 8,
  connectionIntervalMs: 15,
  pdusPerEvent: 4,
  attMtu: 517,
  parameterUpdates: { rules: 'core' as const, minIntervalMs: 7.5 },
});

/**
 * Today's pessimistic phone, kept for comparison: 30 ms, one PDU per connection event, ATT MTU 185,
 * 27-octet link layer (no DLE). No phone is this slow; it bounds the model from above.
 */
export const PESSIMISTIC_PHONE: ControllerProfile = Object.freeze({
  name: 'pessimistic',
  description: 'pessimistic phone: 30 ms, one PDU per connection event, ATT MTU 185, no DLE',
  sources: [
    'issue 4 model (bench group ble until issue 8); rejects every Connection Parameter Update Request',
  ],
  coreVersion: 0x07,
  maxDataOctets: 27,
  initiatesDataLength: false,
  aclBufferLength: 251,
  aclBufferCount: 8,
  connectionIntervalMs: 30,
  pdusPerEvent: 1,
  attMtu: 185,
  parameterUpdates: { rules: 'reject' as const, minIntervalMs: 30 },
});

/** Every named profile, by name. */
export const RADIO_PROFILES: Readonly<Record<string, ControllerProfile>> = Object.freeze(
  Object.fromEntries(
    [PI_ZERO_W, PI_ZERO_2_W, IPHONE, IPHONE_15MS, ANDROID, PESSIMISTIC_PHONE].map((p) => [p.name, p]),
  ),
);
