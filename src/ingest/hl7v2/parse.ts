/**
 * HL7 v2 parser: bytes (or text) → Hl7Message. One pass over the text: segment boundaries are
 * found with indexOf (\r, \n or \r\n, blank lines skipped), fields split once, and a field is
 * split further into repetitions/components/subcomponents, and unescaped, only when it holds
 * one of those characters. A message that is merely odd (Z-segments, extra fields, missing
 * optional segments) parses; only what makes the structure unknowable is an Hl7ParseError.
 */
import type { Delimiters, Hl7Field, Hl7Message, Hl7Repetition, Hl7Segment } from './model.js';
import { decodeText, hexDecoderFor, resolveCharset, sniffMsh18 } from './charset.js';
import { unescapeHl7, type HexDecoder } from './escape.js';
import { Hl7ParseError } from './parse-error.js';

export interface ParseOptions {
  /**
   * Character set of a message without MSH-18: the sender's configured one (`GBK` for many
   * HIS systems). HL7 table 0211 names or iconv-lite names. Default UTF-8.
   */
  readonly defaultCharset?: string;
}

export interface ParseTextOptions {
  /** Charset recorded in the message (the text is already decoded). Default `UTF-8`. */
  readonly charset?: string;
  /** How \X..\ bytes are turned into text. Default: UTF-8, or Latin-1 when not valid UTF-8. */
  readonly hexDecoder?: HexDecoder;
}

const BOM = 0xfeff;

/** Offset after a UTF-8 BOM and leading whitespace, in bytes. */
export function contentStart(bytes: Buffer): number {
  let i = bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0;
  while (i < bytes.length && (bytes[i] === 0x0d || bytes[i] === 0x0a || bytes[i] === 0x20 || bytes[i] === 0x09)) i++;
  return i;
}

/** The iconv-lite encoding a message's bytes are in: MSH-18, else the default, else UTF-8. */
export function detectCharset(bytes: Buffer, defaultCharset?: string): { name: string; encoding: string } {
  const start = contentStart(bytes);
  const declared = bytes.toString('latin1', start, start + 3) === 'MSH' ? sniffMsh18(bytes, start)?.trim() : undefined;
  if (declared) {
    const encoding = resolveCharset(declared);
    if (!encoding) {
      throw new Hl7ParseError('HL7_UNKNOWN_CHARSET', `unknown or unsupported character set "${declared}" in MSH-18`, {
        segment: 'MSH',
        position: 1,
        field: 18,
      });
    }
    return { name: declared, encoding };
  }
  if (defaultCharset) {
    const encoding = resolveCharset(defaultCharset);
    if (!encoding) {
      throw new Hl7ParseError('HL7_UNKNOWN_CHARSET', `unknown default character set "${defaultCharset}" for a message without MSH-18`, {
        segment: 'MSH',
        position: 1,
        field: 18,
      });
    }
    return { name: defaultCharset, encoding };
  }
  return { name: 'UTF-8', encoding: 'utf8' };
}

/** Parses the bytes of one message, decoding them with the character set of MSH-18. */
export function parseHl7(bytes: Buffer, options: ParseOptions = {}): Hl7Message {
  const start = contentStart(bytes);
  if (start >= bytes.length) throw new Hl7ParseError('HL7_EMPTY', 'empty message', { segment: 'MSH', position: 1 });
  const cs = detectCharset(bytes, options.defaultCharset);
  const text = decodeText(start === 0 ? bytes : bytes.subarray(start), cs.encoding);
  return parseHl7Text(text, { charset: cs.name, hexDecoder: hexDecoderFor(cs.encoding) });
}

function isDelimiterOk(code: number): boolean {
  // Printable ASCII punctuation only: letters, digits, spaces and line ends would be ambiguous.
  return code > 0x20 && code < 0x7f && !((code >= 0x30 && code <= 0x39) || ((code | 0x20) >= 0x61 && (code | 0x20) <= 0x7a));
}

/** MSH-1 and MSH-2 of a text starting with "MSH". */
function readDelimiters(text: string, at: number): Delimiters {
  const loc = { segment: 'MSH', position: 1, field: 2 };
  const fs = text.charCodeAt(at + 3);
  if (!isDelimiterOk(fs)) {
    throw new Hl7ParseError('HL7_BAD_ENCODING_CHARS', `MSH-1 field separator ${JSON.stringify(text.charAt(at + 3))} is not a punctuation character`, { ...loc, field: 1 });
  }
  const field = text.charAt(at + 3);
  let end = at + 4;
  while (end < text.length && end < at + 10 && text.charAt(end) !== field && text.charCodeAt(end) !== 0x0d && text.charCodeAt(end) !== 0x0a) end++;
  let enc = text.slice(at + 4, end);
  // `^~\\&`: the escape character doubled, as string-literal copies of MSH produce (several
  // LinuxForHealth samples). HAPI reads such messages; read it as `^~\&` rather than refuse it.
  if (enc.length === 5 && enc[2] === enc[3] && enc[2] !== enc[4]) enc = enc.slice(0, 3) + enc[4];
  if (enc.length < 4 || enc.length > 5) {
    throw new Hl7ParseError(
      'HL7_BAD_ENCODING_CHARS',
      `MSH-2 ${JSON.stringify(enc)} must hold 4 encoding characters (component, repetition, escape, subcomponent) or 5 with truncation`,
      loc,
    );
  }
  const seen = new Set<string>([field]);
  for (const ch of enc) {
    if (!isDelimiterOk(ch.charCodeAt(0)) || seen.has(ch)) {
      throw new Hl7ParseError('HL7_BAD_ENCODING_CHARS', `MSH-2 ${JSON.stringify(enc)}: ${JSON.stringify(ch)} is repeated or not a punctuation character`, loc);
    }
    seen.add(ch);
  }
  return {
    field,
    component: enc[0],
    repetition: enc[1],
    escape: enc[2],
    subcomponent: enc[3],
    ...(enc.length === 5 ? { truncation: enc[4] } : {}),
  };
}

function isSegmentName(s: string): boolean {
  if (s.length !== 3) return false;
  const a = s.charCodeAt(0);
  if (a < 0x41 || a > 0x5a) return false;
  for (let i = 1; i < 3; i++) {
    const c = s.charCodeAt(i);
    if (!((c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39))) return false;
  }
  return true;
}

class FieldParser {
  constructor(
    private readonly d: Delimiters,
    private readonly hex: HexDecoder,
  ) {}

  private value(v: string): string {
    return v.indexOf(this.d.escape) < 0 ? v : unescapeHl7(v, this.d, this.hex);
  }

  private repetition(r: string): Hl7Repetition {
    const d = this.d;
    if (r.indexOf(d.component) < 0) {
      return r.indexOf(d.subcomponent) < 0 ? [[this.value(r)]] : [r.split(d.subcomponent).map((s) => this.value(s))];
    }
    const comps = r.split(d.component);
    const out: string[][] = new Array<string[]>(comps.length);
    for (let i = 0; i < comps.length; i++) {
      const c = comps[i];
      out[i] = c.indexOf(d.subcomponent) < 0 ? [this.value(c)] : c.split(d.subcomponent).map((s) => this.value(s));
    }
    return out;
  }

  field(f: string): Hl7Field {
    if (f === '') return [];
    if (f.indexOf(this.d.repetition) < 0) return [this.repetition(f)];
    return f.split(this.d.repetition).map((r) => this.repetition(r));
  }
}

/** Parses already decoded text (an HTTP body, a test string). */
export function parseHl7Text(input: string, options: ParseTextOptions = {}): Hl7Message {
  let pos = 0;
  const n = input.length;
  if (input.charCodeAt(0) === BOM) pos = 1;
  while (pos < n) {
    const c = input.charCodeAt(pos);
    if (c !== 0x0d && c !== 0x0a && c !== 0x20 && c !== 0x09) break;
    pos++;
  }
  if (pos >= n) throw new Hl7ParseError('HL7_EMPTY', 'empty message', { segment: 'MSH', position: 1 });
  if (!input.startsWith('MSH', pos)) {
    const name = input.slice(pos, pos + 3);
    const hint = name === 'BHS' || name === 'FHS' ? ' (a batch: split it first)' : '';
    throw new Hl7ParseError('HL7_NO_MSH', `message must start with MSH, found ${JSON.stringify(name)}${hint}`, { segment: name, position: 1 });
  }
  const d = readDelimiters(input, pos);
  const fp = new FieldParser(d, options.hexDecoder ?? ((b) => b.toString('utf8')));
  const fs = d.field;
  const segments: Hl7Segment[] = [];
  const lines: string[] = [];
  let cr = input.indexOf('\r', pos);
  let lf = input.indexOf('\n', pos);
  let position = 0;
  while (pos < n) {
    if (cr >= 0 && cr < pos) cr = input.indexOf('\r', pos);
    if (lf >= 0 && lf < pos) lf = input.indexOf('\n', pos);
    const end = cr < 0 ? (lf < 0 ? n : lf) : lf < 0 ? cr : Math.min(cr, lf);
    const line = input.slice(pos, end);
    pos = end + 1;
    if (line.length === 0 || line.trim() === '') continue;
    position++;
    const parts = line.split(fs);
    const name = parts[0];
    if (!isSegmentName(name)) {
      throw new Hl7ParseError('HL7_BAD_SEGMENT_NAME', `segment id ${JSON.stringify(name.slice(0, 20))} is not 3 upper-case letters or digits (a line break inside a field?)`, {
        segment: name.slice(0, 3),
        position,
      });
    }
    const fields: Hl7Field[] = new Array<Hl7Field>(name === 'MSH' ? parts.length + 1 : parts.length);
    fields[0] = [[[name]]];
    if (name === 'MSH') {
      fields[1] = [[[fs]]];
      fields[2] = parts.length > 1 ? [[[parts[1]]]] : [];
      for (let i = 2; i < parts.length; i++) fields[i + 1] = fp.field(parts[i]);
    } else {
      for (let i = 1; i < parts.length; i++) fields[i] = fp.field(parts[i]);
    }
    segments.push({ name, position, fields });
    lines.push(line);
  }
  return { delimiters: d, segments, charset: options.charset ?? 'UTF-8', text: lines.join('\r') };
}
