/**
 * Solenoid and latch contracts against: the simulations; the Linux drivers over a simulated libgpiod
 * (fake spawner whose gpioset times its pulse on the ManualClock); and the Linux drivers on a real Pi when
 * TANDEM_HW_GPIO_CHIP, TANDEM_HW_SOLENOID_LINE and TANDEM_HW_LATCH_LINE name the lines.
 */
import { ManualClock, flushMicrotasks } from '../src/clock.js';
import { LinuxLatchSensor } from '../src/gpio/linux-latch-sensor.js';
import { LinuxSolenoid } from '../src/gpio/linux-solenoid.js';
import { SimLockMechanism } from '../src/gpio/sim-lock-mechanism.js';
import type { LatchState } from '../src/interfaces.js';
import { latchContract } from './contract/latch-contract.js';
import { realElapse } from './contract/harness.js';
import { solenoidContract } from './contract/solenoid-contract.js';
import { FakeSpawner, libgpiodScript } from './fake-spawner.js';

function manualElapse(clock: ManualClock) {
  return async (ms: number): Promise<void> => {
    await clock.advanceAsync(ms, 1);
    for (let i = 0; i < 5; i++) await flushMicrotasks();
  };
}

const noExitHooks = { add: () => () => undefined };

solenoidContract('SimSolenoid', async () => {
  const clock = new ManualClock();
  const mechanism = SimLockMechanism.create({ clock, maxPulseMs: 200 });
  return { solenoid: mechanism.solenoid, elapse: manualElapse(clock) };
});

for (const version of ['v1.6.3', 'v2.1.3']) {
  solenoidContract(`LinuxSolenoid over simulated libgpiod ${version}`, async () => {
    const clock = new ManualClock();
    const spawner: FakeSpawner = new FakeSpawner(
      libgpiodScript(version, (command, args) => {
        if (command !== 'gpioset' || !args.some((a) => a.endsWith('=1'))) return undefined;
        // The tool times the pulse itself: v1 --sec/--usec, v2 -t <ms>ms,0.
        const sec = Number(/--sec=(\d+)/.exec(args.join(' '))?.[1] ?? 0);
        const usec = Number(/--usec=(\d+)/.exec(args.join(' '))?.[1] ?? 0);
        const v2 = /(\d+)ms,0/.exec(args.join(' '));
        const ms = v2 !== null ? Number(v2[1]) : sec * 1000 + usec / 1000;
        const index = spawner.processes.length - 1; // spawn() records the process before asking the script
        clock.setTimeout(() => spawner.processes[index]?.exit(0), ms);
        return { hold: true };
      }),
    );
    const solenoid = new LinuxSolenoid({
      line: { chip: 'gpiochip0', offset: 17 },
      maxPulseMs: 200,
      spawner,
      clock,
      exitHooks: noExitHooks,
    });
    return { solenoid, elapse: manualElapse(clock) };
  });
}

const chip = process.env.TANDEM_HW_GPIO_CHIP;
const solenoidLine = process.env.TANDEM_HW_SOLENOID_LINE;
const latchLine = process.env.TANDEM_HW_LATCH_LINE;

solenoidContract(
  `LinuxSolenoid on ${chip ?? '<chip>'} line ${solenoidLine ?? '<offset>'}`,
  async () => ({
    solenoid: new LinuxSolenoid({
      line: { chip: chip ?? '', offset: Number(solenoidLine) },
      maxPulseMs: Number(process.env.TANDEM_HW_SOLENOID_MAX_MS ?? 200),
    }),
    elapse: realElapse,
  }),
  chip === undefined || solenoidLine === undefined
    ? 'needs a Pi with libgpiod tools and a solenoid driver: set TANDEM_HW_GPIO_CHIP=gpiochip0 TANDEM_HW_SOLENOID_LINE=17 (optionally TANDEM_HW_SOLENOID_MAX_MS)'
    : undefined,
);

latchContract(
  'SimLatchSensor driven by SimLockMechanism',
  async () => {
    const clock = new ManualClock();
    const mechanism = SimLockMechanism.create({ clock, maxPulseMs: 200, debounceMs: 20 });
    await mechanism.solenoid.open();
    return {
      latch: mechanism.latch,
      elapse: manualElapse(clock),
      settleMs: 100,
      move: async (to: LatchState) => {
        if (to === 'open') void mechanism.solenoid.pulse(50);
        else mechanism.push();
      },
    };
  },
  { canMove: true },
);

for (const version of ['v1.6.3', 'v2.1.3']) {
  latchContract(
    `LinuxLatchSensor over simulated libgpiod ${version}`,
    async () => {
      const clock = new ManualClock();
      const spawner = new FakeSpawner(libgpiodScript(version));
      const latch = new LinuxLatchSensor({
        line: { chip: 'gpiochip0', offset: 27 },
        spawner,
        clock,
        debounceMs: 20,
      });
      const edge = (level: 0 | 1): string =>
        version.startsWith('v1') ? `${level}\n` : level ? 'rising\n' : 'falling\n';
      return {
        latch,
        elapse: manualElapse(clock),
        settleMs: 100,
        move: async (to: LatchState) => {
          // Default wiring: pull-up, closed = 0. Bounce three times before settling.
          const level = to === 'closed' ? 0 : 1;
          const other = level === 0 ? 1 : 0;
          spawner.last('gpiomon')?.emit(edge(level) + edge(other) + edge(level) + edge(other) + edge(level));
          for (let i = 0; i < 3; i++) await flushMicrotasks();
        },
      };
    },
    { canMove: true },
  );
}

latchContract(
  `LinuxLatchSensor on ${chip ?? '<chip>'} line ${latchLine ?? '<offset>'}`,
  async () => ({
    latch: new LinuxLatchSensor({ line: { chip: chip ?? '', offset: Number(latchLine) } }),
    elapse: realElapse,
    settleMs: 200,
  }),
  {
    canMove: false,
    ...(chip === undefined || latchLine === undefined
      ? {
          skip: 'needs a Pi with libgpiod tools and a latch switch: set TANDEM_HW_GPIO_CHIP=gpiochip0 TANDEM_HW_LATCH_LINE=27',
        }
      : {}),
  },
);
