import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** One device directory of a fake `/sys/bus/iio/devices` tree; attribute file name to contents. */
export type FakeIioDevice = Record<string, string>;

/** Write a fake IIO tree (`iio:deviceN/<attribute>`) into a fresh temp folder and return its root. */
export async function makeIioTree(devices: Record<string, FakeIioDevice>): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'tandem-iio-'));
  for (const [dir, attributes] of Object.entries(devices)) {
    await mkdir(join(root, dir));
    for (const [name, value] of Object.entries(attributes)) await writeFile(join(root, dir, name), value);
  }
  return root;
}

/** An ADXL345 lying flat: 256 counts per g on z at the kernel's default scale of 0.038307 m/s² per count. */
export function adxl345Flat(): FakeIioDevice {
  return {
    name: 'adxl345\n',
    in_accel_x_raw: '0\n',
    in_accel_y_raw: '-1\n',
    in_accel_z_raw: '256\n',
    in_accel_scale: '0.038307\n',
    sampling_frequency: '100.000000\n',
    sampling_frequency_available: '6.250000 12.500000 25.000000 50.000000 100.000000 200.000000\n',
  };
}
