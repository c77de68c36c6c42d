/**
 * The console's simulation commands (testers' fault injection): they exist only with simulated hardware
 * (the interpreter refuses them otherwise) and move the simulated latch, solenoid and accelerometer.
 */
import { Status } from '../../../protocol/src/index.js';
import { ConsoleError, ARG } from '../console/console-interpreter.js';
import type { ConsoleCommand } from '../console/console-interpreter.js';
import type { LockStateMachine } from '../lock/index.js';
import type { TheftDetector } from '../theft/theft-detector.js';
import type { LockHardware } from './hardware.js';

/** What the simulation commands drive: the simulated parts, and the alarm they can raise. */
export interface SimulationTarget {
  /** Absent with real hardware. */
  readonly sim: LockHardware['sim'];
  readonly theft: Pick<TheftDetector, 'clearAlarm'>;
  readonly stateMachine: Pick<LockStateMachine, 'clearAlarm' | 'reportedState'>;
  /** Reads the fuel gauge now ([TANDEM-MQTT-14]). */
  readonly batteryRefresh?: () => Promise<unknown>;
}

/** The simulation table. */
export function simulationCommands(target: SimulationTarget): ConsoleCommand[] {
  const sim = () => {
    const s = target.sim;
    if (!s) throw new ConsoleError('ERR_CONSOLE_SIMULATION_ONLY', 'no simulated hardware');
    return s;
  };
  return [
    {
      name: 'sim latch push',
      args: [],
      help: 'a rider pushes the shackle closed',
      access: 'simulation',
      run: () => `latched=${sim().mechanism.push()}`,
    },
    {
      name: 'sim fault',
      args: [ARG.oneOf('fault', ['jammed', 'stuck', 'open-circuit', 'latch-disconnected', 'clear'])],
      help: 'inject a hardware fault',
      access: 'simulation',
      run: ([f]) => {
        const { mechanism } = sim();
        if (f === 'clear') {
          mechanism.clearFault();
          mechanism.solenoid.clearFault();
          mechanism.latch.clearFault();
        } else if (f === 'jammed') mechanism.injectFault('jammed');
        else if (f === 'latch-disconnected') mechanism.latch.injectFault('disconnected');
        else mechanism.solenoid.injectFault(f as 'stuck' | 'open-circuit');
        return `fault=${f}`;
      },
    },
    {
      name: 'sim motion',
      args: [
        ARG.oneOf('kind', ['bump', 'shake', 'carry', 'tilt']),
        { ...ARG.uint('ms-or-deg', 600_000), optional: true },
      ],
      help: 'move the simulated accelerometer',
      access: 'simulation',
      run: ([kind, n]) => {
        const a = sim().accelerometer;
        const v = Number(n ?? (kind === 'tilt' ? 40 : 5000));
        if (kind === 'bump') a.bump();
        else if (kind === 'shake') a.shake(v);
        else if (kind === 'carry') {
          a.tilt(40);
          a.move(v);
        } else a.tilt(v);
        return `motion=${kind}`;
      },
    },
    {
      name: 'sim battery',
      args: [ARG.uint('percent', 100)],
      help: 'set the simulated fuel gauge to <percent> (0 to 100); the signed state reports it',
      access: 'simulation',
      run: async ([p]) => {
        const v = Number(p);
        if (v > 100) throw new ConsoleError('ERR_CONSOLE_USAGE', `percent ${p} is above 100`);
        sim().battery.set(v);
        // Read at once rather than at the next poll, so the state goes out now.
        await target.batteryRefresh?.();
        return `battery=${v}`;
      },
    },
    {
      name: 'alarm clear',
      args: [],
      help: 'clear the theft alarm (simulation; an owner does it with a signed command)',
      access: 'simulation',
      run: async () => {
        target.theft.clearAlarm();
        await target.stateMachine.clearAlarm();
        return `state=${target.stateMachine.reportedState} status=${Status[Status.OK]}`;
      },
    },
  ];
}
