import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { HardwareError } from '../src/interfaces.js';
import { LineDecoder, toTerminalNewlines } from '../src/serial/line-decoder.js';
import type { DecodedLine } from '../src/serial/line-decoder.js';
import { PtyConsole } from '../src/serial/pty-console.js';
import { SerialportConsole, mockPortOpener } from '../src/serial/serialport-console.js';
import { StreamConsole } from '../src/serial/stream-console.js';
import { FakeSpawner } from './fake-spawner.js';

const line = (text: string): DecodedLine => ({ kind: 'line', text });

describe('LineDecoder', () => {
  const cases: { title: string; chunks: (string | number[])[]; max?: number; expected: DecodedLine[] }[] = [
    { title: 'LF', chunks: ['a\nb\n'], expected: [line('a'), line('b')] },
    {
      title: 'CR (what Enter sends in picocom/screen)',
      chunks: ['a\rb\r'],
      expected: [line('a'), line('b')],
    },
    { title: 'CRLF counts once', chunks: ['a\r\nb\r\n'], expected: [line('a'), line('b')] },
    {
      title: 'CRLF split across chunks counts once',
      chunks: ['a\r', '\nb\r', '\n'],
      expected: [line('a'), line('b')],
    },
    { title: 'LF CR is two terminators (an empty line)', chunks: ['a\n\r'], expected: [line('a'), line('')] },
    { title: 'no terminator, no line', chunks: ['partial'], expected: [] },
    {
      title: 'backspace and DEL remove the last character',
      chunks: ['abx\x08c\x7f\x7fd\n'],
      expected: [line('ad')],
    },
    {
      title: 'backspace removes a whole multi-byte character',
      chunks: ['café\x7fe\n'],
      expected: [line('cafe')],
    },
    {
      title: 'multi-byte character split across chunks',
      chunks: [
        [0x63, 0xc3],
        [0xa9, 0x0a],
      ],
      expected: [line('cé')],
    },
    {
      title: 'invalid UTF-8 is refused, the next line is fine',
      chunks: [[0xff, 0x0a], 'ok\n'],
      expected: [{ kind: 'invalid-utf8' }, line('ok')],
    },
    {
      title: 'overlong UTF-8 encoding of "/" is refused',
      chunks: [[0xc0, 0xaf, 0x0a]],
      expected: [{ kind: 'invalid-utf8' }],
    },
    {
      title: 'an overlong line is refused once, discarded up to its end, then decoding resumes',
      chunks: ['12345', '6789', '0abc\n', 'ok\n'],
      max: 4,
      expected: [{ kind: 'too-long', maxLineLength: 4 }, line('ok')],
    },
    { title: 'exactly the maximum is accepted', chunks: ['1234\n'], max: 4, expected: [line('1234')] },
  ];
  for (const c of cases) {
    it(c.title, () => {
      const decoder = new LineDecoder(c.max ?? 1024);
      const out = c.chunks.flatMap((chunk) =>
        decoder.push(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Uint8Array.from(chunk)),
      );
      expect(out).toEqual(c.expected);
    });
  }

  it('output newlines become CRLF without doubling existing CRLF', () => {
    expect(toTerminalNewlines('a\nb\r\nc')).toBe('a\r\nb\r\nc');
  });
});

describe('StreamConsole', () => {
  it('reports the stream closing underneath it, then refuses writes', async () => {
    const stream = new PassThrough();
    const console = new StreamConsole({ stream });
    const errors: HardwareError[] = [];
    console.onError((e) => errors.push(e));
    await console.open();
    stream.destroy();
    await new Promise((resolve) => setImmediate(resolve));
    expect(errors.map((e) => e.code)).toEqual(['ERR_HW_IO']);
    expect(errors[0]?.message).toMatch(/closed underneath/);
    await expect(console.write('x')).rejects.toMatchObject({ code: 'ERR_HW_NOT_OPEN' });
  });
});

describe('SerialportConsole', () => {
  it('a missing port is ERR_HW_UNAVAILABLE saying how to enable the UART', async () => {
    const console = new SerialportConsole({ path: '/dev/ttyNOPE', openPort: mockPortOpener });
    const error = await console.open().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HardwareError);
    expect((error as HardwareError).code).toBe('ERR_HW_UNAVAILABLE');
    expect((error as HardwareError).message).toMatch(/enable_uart=1/);
  });

  it('importing the package loads no serialport module; open() does', () => {
    // A fresh Node process, since this test runner has long since loaded serialport.
    const script = `
      const { createRequire } = await import('node:module');
      const loaded = () => Object.keys(createRequire(import.meta.url).cache).filter((k) => /serialport/.test(k)).length;
      const hw = await import('./hardware/src/index.ts');
      const before = loaded();
      await new hw.SerialportConsole({ path: '/dev/ttyNOPE', openPort: hw.mockPortOpener }).open().catch(() => undefined);
      console.log(JSON.stringify({ before, after: loaded() }));`;
    const result = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: new URL('../..', import.meta.url),
      encoding: 'utf8',
    });
    const counts = JSON.parse(result.stdout.trim()) as { before: number; after: number };
    expect(counts.before).toBe(0);
    expect(counts.after).toBeGreaterThan(0);
  });
});

describe('PtyConsole', () => {
  it('spawns socat with two raw, non-echoing pty links', async () => {
    const spawner = new FakeSpawner(() => ({
      hold: true,
      stderr: 'socat[1] N starting data transfer loop with FDs [5,5] and [7,7]\n',
    }));
    const console = new PtyConsole({
      dir: '/tmp/tandem-test-links',
      spawner,
      openPort: async () => ({ stream: new PassThrough(), close: async () => undefined }),
    });
    await console.open();
    expect(spawner.commandLines).toEqual([
      'socat -d -d pty,raw,echo=0,link=/tmp/tandem-test-links/lock pty,raw,echo=0,link=/tmp/tandem-test-links/tester',
    ]);
    expect(console.peerPath).toBe('/tmp/tandem-test-links/tester');
    await console.close();
    expect(spawner.processes[0]?.kills).toEqual(['SIGTERM']);
    expect(console.peerPath).toBeUndefined();
  });

  it('without socat: ERR_HW_UNAVAILABLE naming the package, and nothing left behind', async () => {
    const console = new PtyConsole({ socat: '/nonexistent/socat' });
    const error = await console.open().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HardwareError);
    expect((error as HardwareError).code).toBe('ERR_HW_UNAVAILABLE');
    expect((error as HardwareError).message).toMatch(/sudo apt install socat/);
    expect(console.peerPath).toBeUndefined();
  });

  it('a socat that dies early is reported with its log', async () => {
    const spawner = new FakeSpawner(() => ({ code: 1, stderr: 'socat[1] E openpty: Permission denied\n' }));
    const console = new PtyConsole({ spawner });
    const error = await console.open().catch((e: unknown) => e);
    expect((error as HardwareError).code).toBe('ERR_HW_IO');
    expect((error as HardwareError).message).toMatch(/openpty: Permission denied/);
  });

  it('removes the temporary link folder it created', async () => {
    const spawner = new FakeSpawner(() => ({ hold: true, stderr: 'starting data transfer loop\n' }));
    const console = new PtyConsole({
      spawner,
      openPort: async () => ({ stream: new PassThrough(), close: async () => undefined }),
    });
    await console.open();
    const dir = (console.peerPath ?? '').replace(/\/tester$/, '');
    expect(existsSync(dir)).toBe(true);
    await console.close();
    expect(existsSync(dir)).toBe(false);
  });
});
