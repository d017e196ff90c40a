/**
 * HL7 v2 escape sequences (v2.5 §2.7): decoding field values after splitting, encoding text
 * written into ACKs. Decoding: \F\ \S\ \T\ \R\ \E\ (and \P\ when MSH-2 declares a truncation
 * character) give the delimiter back; \Xhh..\ is hex data decoded in the message's character
 * set; \.br\ is a line break; \H\ and \N\ (highlighting on/off) are dropped. Anything else
 * (\Cxxyy\ \Mxxyyzz\ \Zxx\ \.sp\ …, or a lone escape character) is kept verbatim, so that no
 * information is lost.
 */
import type { Delimiters } from './model.js';

/** Turns the bytes of a \X..\ sequence into text (the parser passes the message charset's). */
export type HexDecoder = (bytes: Buffer) => string;

const utf8Fatal = new TextDecoder('utf-8', { fatal: true });

/** Default \X..\ decoding: UTF-8 when the bytes are valid UTF-8, otherwise Latin-1 code points. */
export function decodeHexUtf8OrLatin1(bytes: Buffer): string {
  try {
    return utf8Fatal.decode(bytes);
  } catch {
    return bytes.toString('latin1');
  }
}

function isHex(s: string): boolean {
  if (s.length === 0 || s.length % 2 !== 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i) | 0x20; // lower-case letters
    if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66))) return false;
  }
  return true;
}

function hexText(hex: string, decode: HexDecoder): string {
  const bytes = Buffer.from(hex, 'hex');
  // HAPI writes a CR as \X000D\ (a 16-bit code); NUL is never meaningful text, so drop it.
  let n = 0;
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== 0) bytes[n++] = bytes[i];
  return decode(bytes.subarray(0, n));
}

function decodeSequence(seq: string, d: Delimiters, decode: HexDecoder): string | undefined {
  switch (seq) {
    case 'F':
      return d.field;
    case 'S':
      return d.component;
    case 'T':
      return d.subcomponent;
    case 'R':
      return d.repetition;
    case 'E':
      return d.escape;
    case 'P':
      return d.truncation;
    case 'H':
    case 'N':
      return '';
    case '.br':
      return '\n';
    default:
      if (seq.charCodeAt(0) === 0x58 /* X */ && isHex(seq.slice(1))) return hexText(seq.slice(1), decode);
      return undefined;
  }
}

/** Decodes the escape sequences of one value (component or subcomponent text). */
export function unescapeHl7(value: string, d: Delimiters, decode: HexDecoder = decodeHexUtf8OrLatin1): string {
  const esc = d.escape;
  let i = value.indexOf(esc);
  if (i < 0 || esc === '') return value;
  let out = '';
  let from = 0;
  while (i >= 0) {
    const j = value.indexOf(esc, i + 1);
    if (j < 0) break; // a lone escape character: kept as it is
    const seq = value.slice(i + 1, j);
    const text = seq === '' ? undefined : decodeSequence(seq, d, decode);
    if (text === undefined) {
      // Unknown sequence: kept verbatim. An empty one (two escape characters) keeps the first.
      if (seq === '') {
        i = j;
        continue;
      }
      out += value.slice(from, j + 1);
      from = j + 1;
    } else {
      out += value.slice(from, i) + text;
      from = j + 1;
    }
    i = value.indexOf(esc, from);
  }
  return out + value.slice(from);
}

/** Escapes text for a value written into a message (ACK texts, ERR-8 …). */
export function escapeHl7(text: string, d: Delimiters): string {
  let out = '';
  let from = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    let rep: string | undefined;
    if (ch === d.escape) rep = 'E';
    else if (ch === d.field) rep = 'F';
    else if (ch === d.component) rep = 'S';
    else if (ch === d.subcomponent) rep = 'T';
    else if (ch === d.repetition) rep = 'R';
    else if (d.truncation !== undefined && ch === d.truncation) rep = 'P';
    else if (ch === '\r') rep = 'X0D';
    else if (ch === '\n') rep = '.br';
    if (rep !== undefined) {
      out += text.slice(from, i) + d.escape + rep + d.escape;
      from = i + 1;
    }
  }
  return from === 0 ? text : out + text.slice(from);
}
