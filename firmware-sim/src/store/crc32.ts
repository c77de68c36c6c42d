/**
 * CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88820, as in zlib, PNG and Ethernet), table-driven.
 * Our own because `zlib.crc32` only exists from Node 20.15 / 22.2 and the unofficial ARMv6 builds for the
 * Pi Zero W lag behind; the test checks it against zlib where zlib has it.
 */

const TABLE: Uint32Array = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/**
 * CRC-32 of `data[start..end)`. Pass a previous result as `seed` to continue a running checksum over
 * several pieces (crc32(b, 0, b.length, crc32(a)) === crc32(a ++ b)).
 */
export function crc32(data: Uint8Array, start = 0, end = data.length, seed = 0): number {
  let c = ~seed >>> 0;
  for (let i = start; i < end; i++) c = TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}
