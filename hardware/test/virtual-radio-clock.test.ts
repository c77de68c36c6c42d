/** The virtual radio's clocks: ordering, bounded runs, auto-advance, and the multi-process link framing. */
import { describe, expect, it } from 'vitest';
import {
  RealClock,
  VirtualClock,
  VirtualRadio,
  VirtualRadioError,
  connectRadio,
  serveRadio,
} from '../src/virtual-radio/index.js';

describe('VirtualClock', () => {
  it('fires timers in due order, same-instant timers in the order they were set', () => {
    const clock = new VirtualClock({ startMs: 100 });
    const fired: string[] = [];
    clock.setTimeout(() => fired.push('b@20'), 20);
    clock.setTimeout(() => fired.push('a@10'), 10);
    clock.setTimeout(() => fired.push('c@20'), 20);
    const cancelled = clock.setTimeout(() => fired.push('never'), 15);
    clock.clearTimeout(cancelled);
    clock.advance(15);
    expect(fired).toEqual(['a@10']);
    expect(clock.now()).toBe(115);
    clock.advance(5);
    expect(fired).toEqual(['a@10', 'b@20', 'c@20']);
    expect(clock.pending()).toBe(0);
  });

  it('stops a runaway runUntilIdle with ERR_RADIO_CLOCK', () => {
    const clock = new VirtualClock();
    const rearm = (): void => {
      clock.setTimeout(rearm, 1);
    };
    rearm();
    try {
      clock.runUntilIdle(50);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(VirtualRadioError);
      expect((err as VirtualRadioError).code).toBe('ERR_RADIO_CLOCK');
      expect((err as Error).message).toBe(
        'VirtualClock.runUntilIdle fired 50 timers and more keep coming; advance(ms) with a bound instead',
      );
    }
  });

  it('auto-advances by itself to the next timer when the process is idle', async () => {
    const clock = new VirtualClock({ autoAdvance: true });
    const at = await new Promise<number>((resolve) => clock.setTimeout(() => resolve(clock.now()), 60_000));
    expect(at).toBe(60_000);
  });
});

describe('RealClock', () => {
  it('fires and cancels timers in real time', async () => {
    const clock = new RealClock();
    let fired = false;
    const t = clock.setTimeout(() => (fired = true), 1);
    clock.clearTimeout(t);
    await new Promise<void>((resolve) => clock.setTimeout(resolve, 1));
    expect(fired).toBe(false);
  });
});

describe('radio link', () => {
  it("carries HCI both ways over 127.0.0.1 TCP and removes a client's devices when it leaves", async () => {
    const radio = new VirtualRadio({ clock: new VirtualClock() });
    const server = await serveRadio(radio, { port: 0 });
    try {
      expect('port' in server.endpoint && server.endpoint.port > 0).toBe(true);
      const remote = await connectRadio(server.endpoint);
      const got: Buffer[] = [];
      const answered = new Promise<void>((resolve) => {
        const channel = remote.open(5, (p) => {
          got.push(p);
          resolve();
        });
        channel.write(Buffer.from([0x01, 0x09, 0x10, 0x00])); // Read BD_ADDR
      });
      await answered;
      expect(got[0]!.subarray(0, 7)).toEqual(Buffer.from([0x04, 0x0e, 0x0a, 0x01, 0x09, 0x10, 0x00]));
      expect(Buffer.from(got[0]!.subarray(7, 13)).reverse().toString('hex')).toBe('54414e000005');
      expect(radio.deviceIds()).toEqual([5]);
      await remote.close();
      for (let i = 0; i < 100 && radio.deviceIds().length > 0; i++)
        await new Promise((r) => setTimeout(r, 5));
      expect(radio.deviceIds()).toEqual([]);
    } finally {
      await server.close();
    }
  });

  it('fails to connect where nothing serves, with ERR_RADIO_LINK and what to check', async () => {
    const err = (await connectRadio({ port: 1 }).catch((e: unknown) => e)) as VirtualRadioError;
    expect(err).toBeInstanceOf(VirtualRadioError);
    expect(err.code).toBe('ERR_RADIO_LINK');
    expect(err.message).toMatch(/is serveRadio\(\) running there\?/);
  });

  it('refuses to open devices on a closed radio with ERR_RADIO_CLOSED', () => {
    const radio = new VirtualRadio({ clock: new VirtualClock() });
    radio.close();
    expect(() => radio.open(0, () => undefined)).toThrow(
      expect.objectContaining({ code: 'ERR_RADIO_CLOSED' }) as unknown as Error,
    );
  });
});
