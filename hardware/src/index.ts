/**
 * Public API of `hardware/`: the port interfaces, the Linux drivers for the Raspberry Pi Zero W / Zero 2 W,
 * and the simulations. Importing this module touches no hardware and loads no native module.
 */
export { HardwareError } from './interfaces.js';
export type {
  AccelSample,
  Accelerometer,
  HardwareErrorCode,
  LatchSensor,
  LatchState,
  SerialConsole,
  Solenoid,
} from './interfaces.js';

export { ManualClock, SystemClock, flushMicrotasks } from './clock.js';
export type { Clock, TimerHandle } from './clock.js';

export { NodeProcessSpawner } from './process-spawner.js';
export type { ProcessExit, ProcessSpawner, SpawnedProcess } from './process-spawner.js';

export { LibgpiodTools } from './gpio/libgpiod.js';
export type { GpioBias, GpioLevel, GpioLine, LibgpiodMajor, LibgpiodToolsOptions } from './gpio/libgpiod.js';
export { ProcessExitHooks } from './gpio/exit-hooks.js';
export type { ExitHooks } from './gpio/exit-hooks.js';
export { Debouncer } from './gpio/debouncer.js';
export { LinuxSolenoid } from './gpio/linux-solenoid.js';
export type { LinuxSolenoidOptions } from './gpio/linux-solenoid.js';
export { LinuxLatchSensor } from './gpio/linux-latch-sensor.js';
export type { LinuxLatchSensorOptions } from './gpio/linux-latch-sensor.js';
export { SimSolenoid } from './gpio/sim-solenoid.js';
export type {
  SimPulseEnd,
  SimPulseRecord,
  SimSolenoidFault,
  SimSolenoidOptions,
} from './gpio/sim-solenoid.js';
export { SimLatchSensor } from './gpio/sim-latch-sensor.js';
export type { SimLatchFault, SimLatchSensorOptions } from './gpio/sim-latch-sensor.js';
export { SimLockMechanism } from './gpio/sim-lock-mechanism.js';
export type { SimLockMechanismOptions, SimMechanismFault } from './gpio/sim-lock-mechanism.js';

export { BatteryMonitor, LinuxSysfsBattery, SimBattery } from './battery.js';
export type { Battery, LinuxSysfsBatteryOptions } from './battery.js';
export { KNOWN_IIO_ACCELEROMETERS, LinuxIioAccelerometer } from './accel/linux-iio-accelerometer.js';
export type { LinuxIioAccelerometerOptions } from './accel/linux-iio-accelerometer.js';
export { STANDARD_GRAVITY, SimAccelerometer } from './accel/sim-accelerometer.js';
export type { AccelTrace, SimAccelerometerOptions, Vec3 } from './accel/sim-accelerometer.js';
export { SeededRandom } from './accel/gaussian.js';

export { LineDecoder } from './serial/line-decoder.js';
export type { DecodedLine } from './serial/line-decoder.js';
export { DEFAULT_MAX_LINE_LENGTH, StreamConsole } from './serial/stream-console.js';
export type { StreamConsoleOptions } from './serial/stream-console.js';
export {
  SerialportConsole,
  loadMockBinding,
  mockPortOpener,
  nativePortOpener,
} from './serial/serialport-console.js';
export type { OpenedPort, PortOpener, SerialportConsoleOptions } from './serial/serialport-console.js';
export { PtyConsole } from './serial/pty-console.js';
export type { PtyConsoleOptions } from './serial/pty-console.js';

// The virtual BLE radio (its own folder and owner; see README "Virtual radio"). Its names are prefixed
// (Virtual*, Radio*), so a flat re-export does not collide with the ports above.
export * from './virtual-radio/index.js';
