/**
 * The lock's hardware, real or simulated, behind the ports of `hardware/` (ARCHITECTURE.md, "Real parts").
 * The runtime sees only the interfaces; `--simulate` swaps every adapter for its simulation, so the same
 * runtime code runs on the Pi and on a laptop.
 */
import type {
  Accelerometer,
  LatchSensor,
  SerialConsole,
  Solenoid,
} from '../../../hardware/src/interfaces.js';
import type { Clock } from '../../../hardware/src/clock.js';
import { SimLockMechanism } from '../../../hardware/src/gpio/sim-lock-mechanism.js';
import { SimAccelerometer } from '../../../hardware/src/accel/sim-accelerometer.js';
import { LinuxSolenoid } from '../../../hardware/src/gpio/linux-solenoid.js';
import { LinuxLatchSensor } from '../../../hardware/src/gpio/linux-latch-sensor.js';
import { LibgpiodTools } from '../../../hardware/src/gpio/libgpiod.js';
import { NodeProcessSpawner } from '../../../hardware/src/process-spawner.js';
import { LinuxIioAccelerometer } from '../../../hardware/src/accel/linux-iio-accelerometer.js';
import { SerialportConsole } from '../../../hardware/src/serial/serialport-console.js';
import { LinuxSysfsBattery, SimBattery } from '../../../hardware/src/battery.js';
import type { Battery } from '../../../hardware/src/battery.js';
import type { HardwareConfig } from '../config/lock-config.js';

/** Everything the runtime drives. `sim` is present only for simulated hardware (tester commands). */
export interface LockHardware {
  readonly solenoid: Solenoid;
  readonly latch: LatchSensor;
  readonly accelerometer: Accelerometer;
  /** The fuel gauge ([TANDEM-MQTT-14]); absent, or failing to read, means no level is reported. */
  readonly battery?: Battery;
  /** The provisioning console; absent when the caller supplies its own. */
  readonly console?: SerialConsole;
  readonly sim?: {
    readonly mechanism: SimLockMechanism;
    readonly accelerometer: SimAccelerometer;
    /** No level until a tester sets one (`sim battery <percent>`). */
    readonly battery: SimBattery;
  };
}

/** Simulated solenoid, latch mechanism and accelerometer on `clock` (the console is the caller's choice). */
export function simulatedHardware(clock: Clock, config: HardwareConfig, seed = 1): LockHardware {
  const mechanism = SimLockMechanism.create({ clock, maxPulseMs: config.maxPulseMs });
  const accelerometer = new SimAccelerometer({ clock, sampleRateHz: config.accelSampleRateHz, seed });
  const battery = new SimBattery();
  return {
    solenoid: mechanism.solenoid,
    latch: mechanism.latch,
    accelerometer,
    battery,
    sim: { mechanism, accelerometer, battery },
  };
}

/** The Raspberry Pi's hardware as the configuration wires it. Nothing is opened until the runtime opens it. */
export function linuxHardware(config: HardwareConfig): LockHardware {
  // One set of libgpiod tools for both GPIO drivers: the version is detected once, one process spawn fewer at
  // every start (tens of ms on a Pi Zero; issue 8 §2).
  const tools = new LibgpiodTools({ spawner: new NodeProcessSpawner() });
  return {
    solenoid: new LinuxSolenoid({
      line: { chip: config.gpioChip, offset: config.solenoidLine },
      maxPulseMs: config.maxPulseMs,
      tools,
    }),
    latch: new LinuxLatchSensor({
      tools,
      line: { chip: config.gpioChip, offset: config.latchLine },
      bias: config.latchActiveLow ? 'pull-up' : 'pull-down',
      closedLevel: config.latchActiveLow ? 0 : 1,
    }),
    accelerometer: new LinuxIioAccelerometer({
      names: [config.accelerometer],
      sampleRateHz: config.accelSampleRateHz,
    }),
    console: new SerialportConsole({ path: config.serialPath, baudRate: config.serialBaudRate }),
    // The one supply of type Battery under /sys/class/power_supply, if the board has a gauge; a board
    // without one reads ERR_HW_UNAVAILABLE and reports no level ([TANDEM-MQTT-14]).
    battery: new LinuxSysfsBattery(),
  };
}
