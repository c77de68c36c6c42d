import { afterEach, describe, expect, it } from 'vitest';
import type { SerialConsole } from '../../src/interfaces.js';
import { expectHardwareError, suiteTitle } from './harness.js';

/** The far end of the line: what a person at a terminal types and sees. */
export interface SerialPeer {
  send(bytes: Uint8Array | string): Promise<void>;
  /** Resolve once the peer has received text containing `text`; returns everything received so far. */
  waitFor(text: string): Promise<string>;
}

export interface SerialHarness {
  readonly console: SerialConsole;
  /** The console's maximum line length. */
  readonly maxLineLength: number;
  /** Present where the test controls the far end (mock port, pseudo-terminal, in-memory stream). */
  readonly peer?: SerialPeer;
  cleanup?(): Promise<void>;
}

function nextLines(console: SerialConsole, count: number): Promise<string[]> {
  return new Promise((resolve) => {
    const lines: string[] = [];
    const off = console.onLine((line) => {
      lines.push(line);
      if (lines.length === count) {
        off();
        resolve(lines);
      }
    });
  });
}

/**
 * The behaviour every {@link SerialConsole} must show. Peer tests need a controllable far end; on a real
 * UART the `loopback` tests need TX wired to RX.
 */
export function serialContract(
  name: string,
  build: () => Promise<SerialHarness>,
  options: { skip?: string; hasPeer: boolean; loopback?: boolean },
): void {
  describe.skipIf(options.skip !== undefined)(
    suiteTitle(`SerialConsole contract: ${name}`, options.skip),
    () => {
      let harness: SerialHarness | undefined;
      const make = async (): Promise<SerialHarness> => {
        harness = await build();
        return harness;
      };
      afterEach(async () => {
        await harness?.console.close();
        await harness?.cleanup?.();
        harness = undefined;
      });
      const peerIt = it.skipIf(!options.hasPeer);

      it('write() before open() is ERR_HW_NOT_OPEN', async () => {
        const { console } = await make();
        await expectHardwareError(console.write('x\n'), 'ERR_HW_NOT_OPEN');
      });

      it('close() is idempotent and write() afterwards is ERR_HW_NOT_OPEN', async () => {
        const { console } = await make();
        await console.open();
        await console.close();
        await console.close();
        await expectHardwareError(console.write('x\n'), 'ERR_HW_NOT_OPEN');
      });

      peerIt('splits input at CR, LF and CRLF (a CRLF split across reads counts once)', async () => {
        const { console, peer } = await make();
        await console.open();
        const lines = nextLines(console, 5);
        await peer?.send('status\r');
        await peer?.send('a\nb\r\nc\r');
        await peer?.send('\nd\n');
        expect(await lines).toEqual(['status', 'a', 'b', 'c', 'd']);
      });

      peerIt('writes text with terminal newlines', async () => {
        const { console, peer } = await make();
        await console.open();
        await console.write('ok locked\n');
        expect(await peer?.waitFor('ok locked\r\n')).toContain('ok locked\r\n');
      });

      peerIt('refuses an overlong line with a message, then carries on', async () => {
        const { console, peer, maxLineLength } = await make();
        await console.open();
        const lines = nextLines(console, 1);
        await peer?.send(`${'x'.repeat(maxLineLength + 10)}\r\n`);
        expect(await peer?.waitFor('longer than')).toMatch(
          new RegExp(`ERR ERR_HW_INVALID_ARGUMENT line longer than ${maxLineLength} bytes`),
        );
        await peer?.send('next\r\n');
        expect(await lines).toEqual(['next']);
      });

      peerIt('accepts a line of exactly the maximum length', async () => {
        const { console, peer, maxLineLength } = await make();
        await console.open();
        const lines = nextLines(console, 1);
        await peer?.send(`${'y'.repeat(maxLineLength)}\n`);
        expect(await lines).toEqual(['y'.repeat(maxLineLength)]);
      });

      peerIt(
        'refuses a line that is not UTF-8 and keeps valid multi-byte text, even split across reads',
        async () => {
          const { console, peer } = await make();
          await console.open();
          const lines = nextLines(console, 1);
          await peer?.send(new Uint8Array([0x6b, 0xff, 0xfe, 0x0a]));
          expect(await peer?.waitFor('not valid UTF-8')).toContain(
            'ERR ERR_HW_INVALID_ARGUMENT line is not valid UTF-8',
          );
          const e = Buffer.from('clé ✓\n', 'utf8');
          await peer?.send(e.subarray(0, 3));
          await peer?.send(e.subarray(3));
          expect(await lines).toEqual(['clé ✓']);
        },
      );

      it.skipIf(options.loopback !== true)(
        'loopback: a written line comes back as one input line',
        async () => {
          const { console } = await make();
          await console.open();
          const lines = nextLines(console, 1);
          await console.write('tandem loopback\n');
          expect(await lines).toEqual(['tandem loopback']);
        },
      );
    },
  );
}
