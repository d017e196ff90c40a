/**
 * Character sets of HL7 v2 messages (MSH-18, HL7 table 0211). Many HIS and LIS systems of the
 * county send GBK or GB 18030 rather than UTF-8. MSH is ASCII, so MSH-18 is read from the raw
 * bytes before the rest of the message is decoded; a message without MSH-18 is decoded with
 * the sender's configured default.
 */
import iconv from 'iconv-lite';
import { decodeHexUtf8OrLatin1, type HexDecoder } from './escape.js';

/** HL7 table 0211 names (and common variants senders use) → iconv-lite encoding names. */
const CHARSETS: Readonly<Record<string, string>> = {
  ASCII: 'ascii',
  'US-ASCII': 'ascii',
  'UNICODE UTF-8': 'utf8',
  'UTF-8': 'utf8',
  UTF8: 'utf8',
  UNICODE: 'utf8',
  'GB 18030-2000': 'gb18030',
  'GB18030-2000': 'gb18030',
  'GB 18030': 'gb18030',
  GB18030: 'gb18030',
  GBK: 'gbk',
  GB2312: 'gbk', // GBK is a superset of GB 2312 (EUC-CN); decoding with it loses nothing
  'GB 2312': 'gbk',
  'BIG-5': 'big5',
  BIG5: 'big5',
  'KS X 1001': 'euc-kr',
  'ISO IR87': 'euc-jp',
  'ISO IR14': 'shift_jis',
};
for (const n of [1, 2, 3, 4, 5, 6, 7, 8, 9, 15]) {
  Object.assign(CHARSETS as Record<string, string>, { [`8859/${n}`]: `iso-8859-${n}`, [`ISO-8859-${n}`]: `iso-8859-${n}` });
}

/**
 * The iconv-lite name for an MSH-18 value (case and surrounding spaces ignored), or undefined
 * when the gateway cannot decode it (CNS 11643-1992, UTF-16/32: not ASCII-compatible or not
 * available).
 */
export function resolveCharset(name: string): string | undefined {
  const key = name.trim().toUpperCase();
  return CHARSETS[key] ?? (iconv.encodingExists(key) && isAsciiCompatible(key) ? key.toLowerCase() : undefined);
}

function isAsciiCompatible(enc: string): boolean {
  const b = iconv.encode('MSH|', enc);
  return b.length === 4 && b.toString('latin1') === 'MSH|';
}

/** True when the charset name needs no iconv table (Node decodes it natively). */
function isNative(enc: string): boolean {
  return enc === 'utf8' || enc === 'ascii' || enc === 'iso-8859-1';
}

/** Decodes message bytes (BOM already removed) with an iconv-lite encoding name. */
export function decodeText(bytes: Buffer, enc: string): string {
  if (enc === 'utf8') return bytes.toString('utf8');
  if (enc === 'ascii' || enc === 'iso-8859-1') return bytes.toString('latin1');
  return iconv.decode(bytes, enc);
}

/** Encodes text (an ACK) in the same character set the message came in. */
export function encodeText(text: string, enc: string): Buffer {
  if (enc === 'utf8') return Buffer.from(text, 'utf8');
  if (enc === 'iso-8859-1') return Buffer.from(text, 'latin1');
  return iconv.encode(text, enc);
}

/** How the bytes of a \X..\ escape are read in a message of this charset. */
export function hexDecoderFor(enc: string): HexDecoder {
  if (enc === 'utf8') return decodeHexUtf8OrLatin1;
  if (isNative(enc)) return (b) => b.toString('latin1');
  return (b) => iconv.decode(b, enc);
}

/**
 * MSH-18 (first repetition, first component) read from raw bytes, without decoding: MSH holds
 * only ASCII up to MSH-18 in practice. Returns undefined when the message has no MSH-18.
 * `start` is where "MSH" begins.
 */
export function sniffMsh18(bytes: Buffer, start = 0): string | undefined {
  if (bytes.length < start + 8) return undefined;
  const fieldSep = bytes[start + 3];
  let field = 2; // bytes[start + 3] is MSH-1; MSH-2 follows it; each separator starts the next field
  let valueStart = -1;
  const comp = bytes[start + 4];
  const rep = bytes[start + 5];
  for (let i = start + 4; i < bytes.length; i++) {
    const b = bytes[i];
    if (b === 0x0d || b === 0x0a) break;
    if (b === fieldSep) {
      if (field === 18) return bytes.toString('latin1', valueStart, i);
      field++;
      valueStart = i + 1;
      continue;
    }
    if (field === 18 && (b === rep || b === comp)) return bytes.toString('latin1', valueStart, i);
  }
  if (field === 18) {
    let end = valueStart;
    while (end < bytes.length && bytes[end] !== 0x0d && bytes[end] !== 0x0a) end++;
    return bytes.toString('latin1', valueStart, end);
  }
  return undefined;
}
