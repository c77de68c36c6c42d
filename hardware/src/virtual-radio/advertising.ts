/**
 * Advertising and scanning (Bluetooth Core spec v5.3, Vol 6 Part B 4.4): advertising events with advDelay,
 * advertising reports, active scanning (SCAN_REQ / SCAN_RSP) and CONNECT_IND to an initiator.
 *
 * An advertiser's events are simulated only while someone listens (a scanner that still wants its
 * reports, or an initiator for it), so that idle devices cost nothing.
 */
import type { LeController } from './controller.js';
import { ADV_REPORT_TYPE, leAdvertisingReport } from './hci-defs.js';
import type { RadioTimer } from './clock.js';
import type { Medium } from './medium.js';

const scannable = (adv: LeController): boolean =>
  adv.adv.type === ADV_REPORT_TYPE.ADV_IND || adv.adv.type === ADV_REPORT_TYPE.ADV_SCAN_IND;

const connectable = (adv: LeController): boolean =>
  adv.adv.type === ADV_REPORT_TYPE.ADV_IND || adv.adv.type === ADV_REPORT_TYPE.ADV_DIRECT_IND;

const reportKey = (adv: LeController, type: number, data: Buffer): string =>
  `${adv.address}/${type}/${data.toString('hex')}`;

export class Advertising {
  private readonly timers = new Map<LeController, RadioTimer>();

  constructor(
    private readonly medium: Medium,
    private readonly controllers: () => Iterable<LeController>,
    /** CONNECT_IND got through from `central` to `peripheral`: create the connection. */
    private readonly establish: (central: LeController, peripheral: LeController) => void,
  ) {}

  /** Start or stop the advertising-event timer of `adv` according to whether anyone listens. */
  refresh(adv: LeController, firstDelayMs?: number): void {
    const want = adv.adv.enabled && !adv.removed && !this.medium.closed && this.hasAudience(adv);
    const timer = this.timers.get(adv);
    if (want && timer === undefined) {
      const delay = firstDelayMs ?? this.medium.advDelayMs();
      this.timers.set(
        adv,
        this.medium.clock.setTimeout(() => this.event(adv), delay),
      );
    } else if (!want && timer !== undefined) {
      this.medium.clock.clearTimeout(timer);
      this.timers.delete(adv);
    }
  }

  refreshAll(): void {
    for (const c of this.controllers()) this.refresh(c);
  }

  /** Stop every advertising timer (the radio is closing). */
  stop(): void {
    for (const t of this.timers.values()) this.medium.clock.clearTimeout(t);
    this.timers.clear();
  }

  /** Is anyone listening for this advertiser, so that its advertising events matter? */
  private hasAudience(adv: LeController): boolean {
    for (const other of this.controllers()) {
      if (other === adv || !this.medium.reachable(adv, other)) continue;
      if (other.initiating?.peerAddress === adv.address && connectable(adv)) return true;
      if (!other.scan.enabled) continue;
      if (!other.scan.filterDuplicates) return true;
      if (!other.scan.reported.has(reportKey(adv, adv.adv.type, adv.adv.data))) return true;
      if (
        other.scan.active &&
        scannable(adv) &&
        !other.scan.reported.has(reportKey(adv, ADV_REPORT_TYPE.SCAN_RSP, adv.adv.scanResponse))
      ) {
        return true;
      }
    }
    return false;
  }

  private event(adv: LeController): void {
    this.timers.delete(adv);
    if (!adv.adv.enabled || adv.removed) return;
    const rssi = this.medium.options.rssiDbm;
    for (const scanner of [...this.controllers()]) {
      if (scanner === adv || !scanner.scan.enabled) continue;
      if (!this.medium.received(adv, scanner)) continue;
      if (scanner.takeReport(reportKey(adv, adv.adv.type, adv.adv.data))) {
        this.medium.deliver(
          scanner,
          leAdvertisingReport(adv.adv.type, adv.addressType, adv.address, adv.adv.data, rssi),
        );
      }
      // Active scanning: SCAN_REQ then SCAN_RSP in the same event (Vol 6 Part B 4.4.3.2).
      if (
        scanner.scan.active &&
        scannable(adv) &&
        this.medium.received(scanner, adv) &&
        this.medium.received(adv, scanner) &&
        scanner.takeReport(reportKey(adv, ADV_REPORT_TYPE.SCAN_RSP, adv.adv.scanResponse))
      ) {
        this.medium.deliver(
          scanner,
          leAdvertisingReport(
            ADV_REPORT_TYPE.SCAN_RSP,
            adv.addressType,
            adv.address,
            adv.adv.scanResponse,
            rssi,
          ),
        );
      }
    }
    if (connectable(adv)) {
      for (const initiator of [...this.controllers()]) {
        if (initiator === adv || initiator.initiating?.peerAddress !== adv.address) continue;
        // CONNECT_IND (Vol 6 Part B 2.3.3.1) must get through, else the initiator waits for the next event.
        if (!this.medium.received(initiator, adv)) continue;
        this.establish(initiator, adv);
        break;
      }
    }
    if (adv.adv.enabled) this.refresh(adv, this.intervalOf(adv) + this.medium.advDelayMs());
  }

  private intervalOf(adv: LeController): number {
    const fixed = this.medium.options.advertisingIntervalMs;
    return fixed > 0 ? fixed : adv.adv.intervalMs;
  }
}
