/**
 * HL7 v2 batches (v2.5 §2.10.3): `[FHS] {BHS {MSH…} BTS} [FTS]` files, or plain concatenated
 * messages, split into one Buffer per message. Splitting works on bytes, so that each message
 * is later decoded with its own MSH-18. Segments outside any MSH make the batch invalid.
 */
import { contentStart } from './parse.js';
import { Hl7ParseError } from './parse-error.js';

export interface Hl7Batch {
  /** File and batch header segments (FHS, BHS), as ASCII text. */
  readonly headers: readonly string[];
  /** One entry per MSH, from its MSH to the end of its last segment. */
  readonly messages: readonly Buffer[];
  /** Message count declared in BTS-1, when the sender gave one. */
  readonly declaredCount?: number;
}

const HEADERS = new Set(['FHS', 'BHS', 'BTS', 'FTS']);

/** True when the bytes start with FHS or BHS (after a BOM or blank lines). */
export function isHl7Batch(bytes: Buffer): boolean {
  const s = contentStart(bytes);
  const name = bytes.toString('latin1', s, s + 3);
  return name === 'FHS' || name === 'BHS';
}

export function splitHl7Batch(bytes: Buffer): Hl7Batch {
  const headers: string[] = [];
  const messages: Buffer[] = [];
  let declaredCount: number | undefined;
  let msgStart = -1;
  let msgEnd = -1;
  let position = 0;
  let pos = contentStart(bytes);
  while (pos < bytes.length) {
    let end = pos;
    while (end < bytes.length && bytes[end] !== 0x0d && bytes[end] !== 0x0a) end++;
    if (end > pos) {
      position++;
      const name = bytes.toString('latin1', pos, pos + 3);
      if (name === 'MSH' || HEADERS.has(name)) {
        if (msgStart >= 0) messages.push(bytes.subarray(msgStart, msgEnd));
        msgStart = name === 'MSH' ? pos : -1;
      } else if (msgStart < 0) {
        throw new Hl7ParseError('HL7_NO_MSH', `segment ${JSON.stringify(name)} outside any message: every message of a batch starts with MSH`, {
          segment: name,
          position,
        });
      }
      if (name === 'FHS' || name === 'BHS') headers.push(bytes.toString('latin1', pos, end));
      if (name === 'BTS' && end > pos + 4) {
        const count = bytes.toString('latin1', pos + 4, end).split(bytes.toString('latin1', pos + 3, pos + 4))[0];
        if (/^\d+$/.test(count)) declaredCount = (declaredCount ?? 0) + Number(count);
      }
      msgEnd = end;
    }
    pos = end + 1;
  }
  if (msgStart >= 0) messages.push(bytes.subarray(msgStart, msgEnd));
  if (declaredCount !== undefined && declaredCount !== messages.length) {
    throw new Hl7ParseError('HL7_BAD_BATCH', `BTS-1 declares ${declaredCount} messages, the batch holds ${messages.length}`, { segment: 'BTS', field: 1 });
  }
  if (messages.length === 0) throw new Hl7ParseError('HL7_NO_MSH', 'the batch holds no message', { segment: 'MSH' });
  return { headers, messages, ...(declaredCount !== undefined ? { declaredCount } : {}) };
}

/**
 * The acknowledgement of a batch (v2.5 §2.10.3): the batch (and file) headers answered — sender
 * and receiver swapped, a new control id, the original's in the reference field (FHS-12/BHS-12)
 * — around the ACK of each message, then BTS with their count (and FTS). Headers are ASCII; each
 * ACK keeps the bytes and character set of its own message.
 */
export function buildBatchAck(headers: readonly string[], acks: readonly Buffer[], now = new Date()): Buffer {
  const stamp = now.toISOString().replace(/[-:T]/g, '').slice(0, 14);
  const controlId = `B${now.getTime().toString(36).toUpperCase()}`;
  const answer = (h: string): string => {
    const fs = h[3] ?? '|';
    const f = h.split(fs);
    // f[n - 1] is field n (field 1 is the separator itself).
    const out = [f[0], f[1] ?? '^~\\&', f[4] ?? '', f[5] ?? '', f[2] ?? '', f[3] ?? '', stamp, '', '', '', `${controlId}${f[0] === 'FHS' ? 'F' : ''}`, f[10] ?? ''];
    return out.join(fs).replace(new RegExp(`\\${fs}+$`), '');
  };
  const file = headers.find((h) => h.startsWith('FHS'));
  const batch = headers.find((h) => h.startsWith('BHS')) ?? (file ? `BHS${file.slice(3)}` : 'BHS|^~\\&');
  const fs = batch[3] ?? '|';
  const parts: Buffer[] = [];
  if (file) parts.push(Buffer.from(answer(file), 'latin1'));
  parts.push(Buffer.from(answer(batch), 'latin1'));
  for (const a of acks) parts.push(a.subarray(0, a.length - (a[a.length - 1] === 0x0d ? 1 : 0)));
  parts.push(Buffer.from(`BTS${fs}${acks.length}`, 'latin1'));
  if (file) parts.push(Buffer.from(`FTS${fs}1`, 'latin1'));
  return Buffer.concat(parts.flatMap((p, i) => (i === 0 ? [p] : [Buffer.from('\r'), p])));
}
