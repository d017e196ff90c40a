/**
 * MLLP framing (HL7 v2 Appendix C): <VT 0x0B> message <FS 0x1C><CR 0x0D>. The decoder takes
 * TCP chunks as they come (a frame split over packets, several frames in one packet) and
 * returns whole frames. Bytes outside frames are discarded and counted (CR/LF between frames,
 * which many senders add, are not counted); a new VT inside a frame discards the unfinished one;
 * a lone FS also ends a frame. A frame larger than maxFrameBytes is reported once, then skipped.
 */

const VT = 0x0b;
const FS = 0x1c;
const CR = 0x0d;
const LF = 0x0a;

export interface DecodeResult {
  readonly frames: Buffer[];
  /** Set when a frame passed maxFrameBytes: its first bytes (to read MSH for a refusal). */
  readonly oversize?: Buffer;
}

export class MllpFrameDecoder {
  private parts: Buffer[] = [];
  private size = 0;
  private inFrame = false;
  private skipping = false;
  private afterFs = false;
  /** Bytes thrown away outside frames (or of unfinished frames). */
  garbageBytes = 0;
  oversizeFrames = 0;

  constructor(private readonly maxFrameBytes: number) {}

  /** True while part of a frame has been received. */
  get pending(): boolean {
    return this.inFrame && (this.size > 0 || this.skipping);
  }

  push(chunk: Buffer): DecodeResult {
    const frames: Buffer[] = [];
    let oversize: Buffer | undefined;
    let i = 0;
    if (this.afterFs && chunk.length > 0) {
      if (chunk[0] === CR) i = 1;
      this.afterFs = false;
    }
    while (i < chunk.length) {
      if (!this.inFrame) {
        const start = chunk.indexOf(VT, i);
        const end = start < 0 ? chunk.length : start;
        for (let k = i; k < end; k++) if (chunk[k] !== CR && chunk[k] !== LF) this.garbageBytes++;
        if (start < 0) break;
        this.inFrame = true;
        i = start + 1;
        continue;
      }
      const fs = chunk.indexOf(FS, i);
      const vt = chunk.indexOf(VT, i);
      if (vt >= 0 && (fs < 0 || vt < fs)) {
        // A new frame starts before this one ended: drop the unfinished one.
        this.garbageBytes += this.size + (vt - i);
        this.reset();
        this.inFrame = true;
        i = vt + 1;
        continue;
      }
      const end = fs < 0 ? chunk.length : fs;
      if (!this.skipping) {
        if (this.size + (end - i) > this.maxFrameBytes) {
          const head = Buffer.concat([...this.parts, chunk.subarray(i, Math.min(end, i + 4096))]).subarray(0, 4096);
          oversize ??= head;
          this.oversizeFrames++;
          this.skipping = true;
          this.parts = [];
        } else if (end > i) {
          this.parts.push(chunk.subarray(i, end));
        }
      }
      this.size += end - i;
      if (fs < 0) break;
      if (!this.skipping) frames.push(this.parts.length === 1 ? Buffer.from(this.parts[0]) : Buffer.concat(this.parts, this.size));
      this.reset();
      i = fs + 1;
      if (i < chunk.length) {
        if (chunk[i] === CR) i++;
      } else {
        this.afterFs = true;
      }
    }
    return oversize ? { frames, oversize } : { frames };
  }

  private reset(): void {
    this.parts = [];
    this.size = 0;
    this.inFrame = false;
    this.skipping = false;
  }
}

/** Wraps a message (or ACK) in MLLP framing. */
export function frameMllp(message: Buffer): Buffer {
  const out = Buffer.allocUnsafe(message.length + 3);
  out[0] = VT;
  message.copy(out, 1);
  out[message.length + 1] = FS;
  out[message.length + 2] = CR;
  return out;
}
