/**
 * Accelerometer contract against the simulation, the IIO driver over a fake sysfs tree, and the IIO driver
 * on a real Pi when TANDEM_HW_IIO_DEVICE names the device.
 */
import { rm } from 'node:fs/promises';
import { ManualClock, flushMicrotasks } from '../src/clock.js';
import { LinuxIioAccelerometer } from '../src/accel/linux-iio-accelerometer.js';
import { SimAccelerometer } from '../src/accel/sim-accelerometer.js';
import { accelerometerContract } from './contract/accelerometer-contract.js';
import { realElapse } from './contract/harness.js';
import { adxl345Flat, makeIioTree } from './fake-iio.js';

accelerometerContract('SimAccelerometer', async () => {
  const clock = new ManualClock();
  return { accelerometer: new SimAccelerometer({ clock, seed: 7 }), elapse: async (ms) => clock.advance(ms) };
});

/**
 * Advance the ManualClock 1 ms at a time; when a poll timer has fired (no timer pending), let the driver's
 * file reads finish before moving on, so each period yields its sample. The wait is bounded by a number of
 * event-loop turns, not by time, and only matters once the driver is closed.
 */
function iioElapse(clock: ManualClock) {
  return async (ms: number): Promise<void> => {
    for (let i = 0; i < ms; i++) {
      clock.advance(1);
      for (let turns = 0; clock.pendingTimers() === 0 && turns < 200; turns++) await flushMicrotasks();
    }
  };
}

accelerometerContract('LinuxIioAccelerometer over a fake IIO tree', async () => {
  const root = await makeIioTree({ 'iio:device0': { name: 'bmp280\n' }, 'iio:device1': adxl345Flat() });
  const clock = new ManualClock();
  return {
    accelerometer: new LinuxIioAccelerometer({ root, clock, sampleRateHz: 50 }),
    elapse: iioElapse(clock),
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
});

const device = process.env.TANDEM_HW_IIO_DEVICE;
accelerometerContract(
  `LinuxIioAccelerometer on ${device ?? '<device>'}`,
  async () => ({ accelerometer: new LinuxIioAccelerometer({ device: device ?? '' }), elapse: realElapse }),
  device === undefined
    ? 'needs a Pi with an IIO accelerometer lying still: set TANDEM_HW_IIO_DEVICE=adxl345 (driver name) or iio:device0'
    : undefined,
);
