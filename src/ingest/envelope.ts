/**
 * The MSH envelope of a message, read straight from its bytes before the full parse: enough to
 * identify the sender (and its default character set), to label metrics and dead letters, and to
 * answer an ACK even for a message that does not parse. Also the ACK types of the pipeline and
 * a plain ACK builder used until the hl7v2 folder's builder is wired in.
 */
import type { Hl7Location, Hl7Message } from './hl7v2/model.js';
import { formatLocation } from './hl7v2/model.js';

export interface Envelope {
  readonly fieldSeparator: string;
  readonly encodingCharacters: string;
  readonly sendingApplication: string;
  readonly sendingFacility: string;
  readonly receivingApplication: string;
  readonly receivingFacility: string;
  /** MSH-9.1^MSH-9.2, e.g. `ORU^R01` ('' when absent). */
  readonly messageType: string;
  readonly triggerEvent: string;
  /** MSH-10. */
  readonly controlId: string;
  /** MSH-11.1. */
  readonly processingId: string;
  /** MSH-12.1. */
  readonly version: string;
  /** MSH-18.1, as sent ('' when absent). */
  readonly charset: string;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const gb18030 = new TextDecoder('gb18030');

/** The MSH segment's text: UTF-8 when it decodes as such, else GB18030 (a superset of GBK). */
function headerText(bytes: Buffer): string | undefined {
  let start = 0;
  while (start < bytes.length && (bytes[start] === 0x0b || bytes[start] === 0x0d || bytes[start] === 0x0a || bytes[start] === 0x20)) start++;
  if (bytes.subarray(start, start + 3).toString('latin1') !== 'MSH') return undefined;
  let end = start;
  while (end < bytes.length && bytes[end] !== 0x0d && bytes[end] !== 0x0a) end++;
  const seg = bytes.subarray(start, end);
  try {
    return utf8.decode(seg);
  } catch {
    return gb18030.decode(seg);
  }
}

/** Reads the MSH fields the pipeline needs; undefined when the bytes do not start with an MSH segment. */
export function readEnvelope(bytes: Buffer): Envelope | undefined {
  const text = headerText(bytes);
  if (text === undefined || text.length < 8) return undefined;
  const fs = text[3];
  const parts = text.split(fs);
  const enc = parts[1] ?? '';
  const cs = enc[0] ?? '^';
  // parts[n - 1] is MSH-n (MSH-1 is the separator itself).
  const first = (n: number) => (parts[n - 1] ?? '').split(cs)[0].split(enc[1] ?? '~')[0].trim();
  const comp = (n: number, c: number) => ((parts[n - 1] ?? '').split(enc[1] ?? '~')[0].split(cs)[c - 1] ?? '').trim();
  const type = comp(9, 1);
  const trigger = comp(9, 2);
  return {
    fieldSeparator: fs,
    encodingCharacters: enc,
    sendingApplication: first(3),
    sendingFacility: first(4),
    receivingApplication: first(5),
    receivingFacility: first(6),
    messageType: type ? `${type}${trigger ? `^${trigger}` : ''}` : '',
    triggerEvent: trigger,
    controlId: first(10),
    processingId: first(11),
    version: first(12),
    charset: first(18),
  };
}

/** TextDecoder label of an HL7 character set name (table 0211) or a sender default. */
export function decoderLabel(charset: string | undefined): string {
  const c = (charset ?? '').toUpperCase().replace(/[\s_-]/g, '');
  if (c === '' || c === 'UNICODEUTF8' || c === 'UTF8' || c === 'UNICODE') return 'utf-8';
  if (c.startsWith('GB18030')) return 'gb18030';
  if (c === 'GBK' || c === 'CP936') return 'gbk';
  if (c === 'GB2312' || c === 'GB231280') return 'gbk';
  if (c === '8859/1' || c === 'ISO88591') return 'latin1';
  if (c === 'ASCII') return 'utf-8';
  return 'utf-8';
}

/** The raw bytes as text in their character set (for people reading a dead letter). */
export function decodeRaw(raw: Buffer, charset: string | undefined): string {
  return new TextDecoder(decoderLabel(charset)).decode(raw);
}

// ---- acknowledgments ----

export type AckCode = 'AA' | 'AE' | 'AR';

export interface AckError {
  /** HL7 table 0357 code: 100 segment sequence, 101 required field missing, 102 data type, 103 table value not found, 200 unsupported message type, 203 unsupported version, 204 unknown key, 207 application internal error. */
  readonly hl7Code: string;
  readonly severity: 'E' | 'W' | 'I';
  readonly location?: Hl7Location;
  readonly text: string;
}

export interface AckRequest {
  readonly envelope: Envelope | undefined;
  /** The parsed message when it parsed. */
  readonly message?: Hl7Message;
  readonly code: AckCode;
  /** MSA-3 text. */
  readonly text?: string;
  readonly errors?: readonly AckError[];
}

/** Builds the ACK bytes of a message (charset of the message). */
export type AckBuilder = (req: AckRequest) => Buffer;

const TABLE_0357: Readonly<Record<string, string>> = {
  '0': 'Message accepted',
  '100': 'Segment sequence error',
  '101': 'Required field missing',
  '102': 'Data type error',
  '103': 'Table value not found',
  '200': 'Unsupported message type',
  '201': 'Unsupported event code',
  '202': 'Unsupported processing id',
  '203': 'Unsupported version id',
  '204': 'Unknown key identifier',
  '205': 'Duplicate key identifier',
  '206': 'Application record locked',
  '207': 'Application internal error',
};

function escaper(enc: string, fs: string): (s: string) => string {
  const [cs = '^', rs = '~', esc = '\\', ss = '&'] = enc;
  const map = new Map([
    [esc, `${esc}E${esc}`],
    [fs, `${esc}F${esc}`],
    [cs, `${esc}S${esc}`],
    [rs, `${esc}R${esc}`],
    [ss, `${esc}T${esc}`],
  ]);
  return (s) => [...s.replace(/[\r\n]+/g, ' ')].map((ch) => map.get(ch) ?? ch).join('');
}

let ackSeq = 0;

/** HL7 DTM of now, to the second, in local time with offset. */
function timestamp(d = new Date()): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const off = -d.getTimezoneOffset();
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}${off >= 0 ? '+' : '-'}${p(Math.floor(Math.abs(off) / 60))}${p(Math.abs(off) % 60)}`;
}

/**
 * An original-mode ACK: MSH (sender and receiver swapped, MSH-10 new, MSH-12 and MSH-18 echoed),
 * MSA (code, the message's MSH-10, text) and one ERR per error (v2.5 layout: ERR-2 location,
 * ERR-3 code from table 0357, ERR-4 severity, ERR-8 user message). UTF-8 encoded.
 */
export const basicAck: AckBuilder = (req) => {
  const env = req.envelope;
  const fs = env?.fieldSeparator || '|';
  const enc = env?.encodingCharacters?.length && env.encodingCharacters.length >= 4 ? env.encodingCharacters.slice(0, 4) : '^~\\&';
  const e = escaper(enc, fs);
  const cs = enc[0];
  const controlId = `ACK${Date.now().toString(36).toUpperCase()}${(ackSeq = (ackSeq + 1) % 1296).toString(36).toUpperCase().padStart(2, '0')}`;
  const msh = [
    'MSH',
    enc,
    e(env?.receivingApplication || 'COUNTY-HIE'),
    e(env?.receivingFacility || ''),
    e(env?.sendingApplication ?? ''),
    e(env?.sendingFacility ?? ''),
    timestamp(),
    '',
    `ACK${cs}${e(env?.triggerEvent ?? '')}${cs}ACK`,
    controlId,
    e(env?.processingId || 'P'),
    e(env?.version || '2.5'),
  ];
  if (env?.charset) msh.push('', '', '', '', '', e(env.charset));
  const segments = [msh.join(fs), ['MSA', req.code, e(env?.controlId ?? ''), e((req.text ?? '').slice(0, 80))].join(fs)];
  for (const err of req.errors ?? []) {
    const l = err.location;
    const parts = l ? [l.segment, l.position, l.field, l.repetition, l.component, l.subcomponent].map((x) => e(String(x ?? ''))) : [];
    while (parts.length > 0 && parts[parts.length - 1] === '') parts.pop();
    const erl = parts.join(cs);
    const code = `${err.hl7Code}${cs}${e(TABLE_0357[err.hl7Code] ?? '')}${cs}HL70357`;
    segments.push(['ERR', '', erl, code, err.severity, '', '', '', e(`${l ? `${formatLocation(l)}: ` : ''}${err.text}`.slice(0, 250))].join(fs));
  }
  return Buffer.from(segments.join('\r') + '\r', 'utf8');
};
