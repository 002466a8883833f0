/**
 * Positional reads and writes of any length. Node refuses a single fs.readSync / fs.writeSync of
 * more than 2^31 - 1 bytes (a Gemma 3 27B embedding table is 2.8 GB), and the kernel may return
 * fewer bytes than asked: both helpers loop in bounded pieces until every byte is moved.
 */
import * as fs from 'node:fs';

/** The largest piece one system call moves (1 GiB: well under Node's 2 GiB limit). */
export const MAX_IO_BYTES = 1 << 30;

/**
 * Reads exactly `length` bytes at file position `position` into `dst` at `dstOffset`. Returns how
 * many bytes it got: fewer than `length` only where the file ended first.
 */
export function readFully(fd: number, dst: Uint8Array, dstOffset: number, length: number, position: number, maxPiece = MAX_IO_BYTES): number {
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, dst, dstOffset + done, Math.min(maxPiece, length - done), position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

/** Writes `length` bytes of `src` from `srcOffset` at file position `position`, all of them. */
export function writeFully(fd: number, src: Uint8Array, srcOffset: number, length: number, position: number, maxPiece = MAX_IO_BYTES): void {
  let done = 0;
  while (done < length) done += fs.writeSync(fd, src, srcOffset + done, Math.min(maxPiece, length - done), position + done);
}
