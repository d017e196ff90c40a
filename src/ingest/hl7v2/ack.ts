/**
 * HL7 v2 acknowledgements (v2.5 §2.9): the ACK for a received message, original or enhanced
 * mode, with ERR segments naming what went wrong, in the sender's delimiters, version and
 * character set. Also a best-effort ACK for input too broken to have a parsable MSH.
 */
import { randomBytes } from 'node:crypto';
import { decodeText, encodeText, resolveCharset, sniffMsh18 } from './charset.js';
import { escapeHl7 } from './escape.js';
import type { Delimiters, Hl7Field, Hl7Location, Hl7Message } from './model.js';
import { valueAt } from './model.js';
import { contentStart } from './parse.js';

export type AckCode = 'AA' | 'AE' | 'AR' | 'CA' | 'CE' | 'CR';
export type AckSeverity = 'E' | 'W' | 'I';

/** One ERR segment (or ERR-1 repetition before v2.5). */
export interface AckErrorDetail {
  readonly location: Hl7Location;
  /** HL7 table 0357: 100 segment sequence, 101 required field missing, 102 data type, 103 table value, 200–207 … */
  readonly hl7ErrorCode: string;
  readonly severity: AckSeverity;
  readonly text: string;
}

export interface AckOptions {
  readonly code: AckCode;
  /** MSA-3 text message. */
  readonly text?: string;
  readonly errors?: readonly AckErrorDetail[];
  /** MSH-10 of the ACK; default 20 random hex characters. */
  readonly controlId?: string;
  /** MSH-7 of the ACK; default now. */
  readonly now?: Date;
}

/** What an ACK needs from the message it answers; values are already encoded HL7 text. */
export interface AckHeader {
  readonly delimiters?: Delimiters;
  readonly sendingApplication?: string;
  readonly sendingFacility?: string;
  readonly receivingApplication?: string;
  readonly receivingFacility?: string;
  /** MSH-10 of the message acknowledged (MSA-2). */
  readonly controlId?: string;
  /** MSH-9.2, the trigger event. */
  readonly trigger?: string;
  /** MSH-11. */
  readonly processingId?: string;
  /** MSH-12; default 2.5.1. */
  readonly version?: string;
  /** MSH-18 of the message, copied into the ACK and used to encode it. */
  readonly charset?: string;
}

export const TABLE_0357: Readonly<Record<string, string>> = {
  '0': 'Message accepted',
  '100': 'Segment sequence error',
  '101': 'Required field missing',
  '102': 'Data type error',
  '103': 'Table value not found',
  '104': 'Value too long',
  '200': 'Unsupported message type',
  '201': 'Unsupported event code',
  '202': 'Unsupported processing id',
  '203': 'Unsupported version id',
  '204': 'Unknown key identifier',
  '205': 'Duplicate key identifier',
  '206': 'Application record locked',
  '207': 'Application internal error',
};

const DEFAULT_DELIMITERS: Delimiters = { field: '|', component: '^', repetition: '~', escape: '\\', subcomponent: '&' };

/** True when version `v` (e.g. "2.5.1") is at least `min` ("2.5"). */
export function versionAtLeast(v: string, min: string): boolean {
  const a = v.split('.').map((x) => Number.parseInt(x, 10) || 0);
  const b = min.split('.').map((x) => Number.parseInt(x, 10) || 0);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
  }
  return true;
}

/** Re-encodes a parsed field (escaping values) in the given delimiters. */
export function encodeField(field: Hl7Field | undefined, d: Delimiters): string {
  if (!field) return '';
  return field.map((rep) => rep.map((comp) => comp.map((s) => escapeHl7(s, d)).join(d.subcomponent)).join(d.component)).join(d.repetition);
}

/** The header values an ACK copies, from a parsed message. */
export function ackHeaderOf(message: Hl7Message): AckHeader {
  const msh = message.segments[0];
  const d = message.delimiters;
  const charset = valueAt(msh, 18);
  return {
    delimiters: d,
    sendingApplication: encodeField(msh.fields[3], d),
    sendingFacility: encodeField(msh.fields[4], d),
    receivingApplication: encodeField(msh.fields[5], d),
    receivingFacility: encodeField(msh.fields[6], d),
    controlId: escapeHl7(valueAt(msh, 10), d),
    trigger: escapeHl7(valueAt(msh, 9, 2), d),
    processingId: encodeField(msh.fields[11], d),
    version: escapeHl7(valueAt(msh, 12), d),
    ...(charset ? { charset } : {}),
  };
}

export type AckMode = 'original' | 'enhanced';
/** HL7 table 0155: AL always, NE never, ER only on error, SU only on success. */
export type AckCondition = 'AL' | 'NE' | 'ER' | 'SU';

export interface RequestedAcks {
  readonly mode: AckMode;
  /** MSH-15 (enhanced mode). */
  readonly accept: AckCondition;
  /** MSH-16 (enhanced mode); in original mode the one ACK is always sent. */
  readonly application: AckCondition;
}

function condition(v: string, dflt: AckCondition): AckCondition {
  return v === 'AL' || v === 'NE' || v === 'ER' || v === 'SU' ? v : dflt;
}

/**
 * Which acknowledgements the sender asked for. Original mode (MSH-15 and MSH-16 empty): one
 * ACK with AA/AE/AR after processing. Enhanced mode: an accept ACK (CA/CE/CR) once the message
 * is safely received, as MSH-15 asks, and an application ACK (AA/AE/AR) as MSH-16 asks.
 */
export function requestedAcks(message: Hl7Message): RequestedAcks {
  const msh = message.segments[0];
  return acksRequestedBy(valueAt(msh, 15), valueAt(msh, 16));
}

/** {@link requestedAcks} from the values of MSH-15 and MSH-16. */
export function acksRequestedBy(a: string, b: string): RequestedAcks {
  if (a === '' && b === '') return { mode: 'original', accept: 'NE', application: 'AL' };
  // An empty MSH-15/16 in enhanced mode means "always" (v2.5 §2.9.3).
  return { mode: 'enhanced', accept: condition(a, 'AL'), application: condition(b, 'AL') };
}

/** Whether an ACK of this condition is due, given whether the step succeeded. */
export function ackDue(cond: AckCondition, success: boolean): boolean {
  return cond === 'AL' || (cond === 'ER' && !success) || (cond === 'SU' && success);
}

/** The ACK code for an outcome: accept ACKs use C*, application (and original mode) A*. */
export function ackCodeFor(kind: 'accept' | 'application', outcome: 'ok' | 'error' | 'reject'): AckCode {
  const prefix = kind === 'accept' ? 'C' : 'A';
  return `${prefix}${outcome === 'ok' ? 'A' : outcome === 'error' ? 'E' : 'R'}` as AckCode;
}

function timestamp(now: Date): string {
  const p = (n: number, w = 2) => String(Math.abs(n)).padStart(w, '0');
  const off = -now.getTimezoneOffset();
  return (
    `${now.getFullYear()}${p(now.getMonth() + 1)}${p(now.getDate())}${p(now.getHours())}${p(now.getMinutes())}${p(now.getSeconds())}` +
    `${off >= 0 ? '+' : '-'}${p(Math.floor(Math.abs(off) / 60))}${p(Math.abs(off) % 60)}`
  );
}

function isMessage(x: Hl7Message | AckHeader): x is Hl7Message {
  return (x as Hl7Message).segments !== undefined;
}

/** Occurrence of the segment at `position` among segments of its id (ERL-2), when known. */
function occurrence(message: Hl7Message | undefined, l: Hl7Location): number {
  if (!message || l.position === undefined) return l.position ?? 1;
  let n = 0;
  for (const s of message.segments) {
    if (s.name === l.segment) n++;
    if (s.position === l.position) return Math.max(n, 1);
  }
  return 1;
}

/**
 * The ACK (segments separated by \r, no MLLP framing) for a message or a header. MSH: sender and
 * receiver swapped, new MSH-10, MSH-9 `ACK^<trigger>^ACK` (MSH-9.3 from v2.3.1), same version,
 * delimiters and MSH-18. MSA: code, original MSH-10, text. Errors: one ERR each with ERR-2
 * location, ERR-3 code, ERR-4 severity, ERR-8 text from v2.5; before, one ERR whose ERR-1 repeats.
 * With a header only, ERR-2.2 (segment occurrence) is the location's position as given.
 */
export function buildAck(source: Hl7Message | AckHeader, options: AckOptions): string {
  const message = isMessage(source) ? source : undefined;
  const h = message ? ackHeaderOf(message) : (source as AckHeader);
  const d = h.delimiters ?? DEFAULT_DELIMITERS;
  const version = h.version || '2.5.1';
  const enc = `${d.component}${d.repetition}${d.escape}${d.subcomponent}${d.truncation ?? ''}`;
  const trigger = h.trigger ?? '';
  const type = versionAtLeast(version, '2.3.1') ? ['ACK', trigger, 'ACK'] : ['ACK', trigger];
  const f = d.field;
  const msh = [
    `MSH${f}${enc}`,
    h.receivingApplication ?? '',
    h.receivingFacility ?? '',
    h.sendingApplication ?? '',
    h.sendingFacility ?? '',
    timestamp(options.now ?? new Date()),
    '',
    type.join(d.component),
    options.controlId ?? randomBytes(10).toString('hex').toUpperCase(),
    h.processingId || 'P',
    version,
  ];
  if (h.charset) msh.push('', '', '', '', '', escapeHl7(h.charset, d));
  const segments = [msh.join(f), ['MSA', options.code, h.controlId ?? '', options.text === undefined ? '' : escapeHl7(options.text, d)].join(f).replace(new RegExp(`\\${f}+$`), '')];
  const errors = options.errors ?? [];
  const c = d.component;
  if (errors.length > 0 && versionAtLeast(version, '2.5')) {
    for (const e of errors) {
      const l = e.location;
      const erl = [l.segment, occurrence(message, l), l.field ?? '', l.field === undefined ? '' : (l.repetition ?? 1), l.component ?? '', l.subcomponent ?? '']
        .join(c)
        .replace(new RegExp(`\\${c}+$`), '');
      const cwe = [e.hl7ErrorCode, TABLE_0357[e.hl7ErrorCode] ?? '', 'HL70357'].join(c);
      segments.push(['ERR', '', erl, cwe, e.severity, '', '', '', escapeHl7(e.text, d)].join(f));
    }
  } else if (errors.length > 0) {
    const s = d.subcomponent;
    const reps = errors.map((e) => {
      const l = e.location;
      const ce = [e.hl7ErrorCode, escapeHl7(e.text, d).split(s).join(''), 'HL70357'].join(s);
      return [l.segment, occurrence(message, l), l.field ?? '', ce].join(c);
    });
    segments.push(['ERR', reps.join(d.repetition)].join(f));
  }
  return segments.join('\r');
}

/** The ACK encoded in the message's character set (MSH-18, else `fallbackCharset`, else UTF-8). */
export function buildAckBytes(source: Hl7Message | AckHeader, options: AckOptions, fallbackCharset?: string): Buffer {
  const text = buildAck(source, options);
  const name = isMessage(source) ? source.charset : (source.charset ?? fallbackCharset);
  return encodeText(text, (name && resolveCharset(name)) || 'utf8');
}

/**
 * Best-effort header for bytes that did not parse: MSH-3..12 read from the first line when it
 * starts with MSH and its delimiters are usable; otherwise the defaults (`|^~\&`, v2.5.1).
 */
export function ackHeaderFromBytes(bytes: Buffer): AckHeader {
  const start = contentStart(bytes);
  if (bytes.toString('latin1', start, start + 3) !== 'MSH') return {};
  let end = start;
  while (end < bytes.length && end < start + 2048 && bytes[end] !== 0x0d && bytes[end] !== 0x0a) end++;
  const charset = sniffMsh18(bytes, start)?.trim();
  const encoding = (charset && resolveCharset(charset)) || 'utf8';
  const line = decodeText(bytes.subarray(start, end), encoding);
  const fs = line.charAt(3);
  const encChars = line.slice(4, 8);
  const ok = fs !== '' && /^[!-/:-@[-`{-~]$/.test(fs) && new Set(fs + encChars).size === 5 && /^[!-/:-@[-`{-~]{4}$/.test(encChars);
  if (!ok) return {};
  const d: Delimiters = { field: fs, component: encChars[0], repetition: encChars[1], escape: encChars[2], subcomponent: encChars[3] };
  const parts = line.split(fs);
  // parts[n] is MSH-(n+1): parts[1] is MSH-2.
  const field = (n: number) => parts[n - 1] ?? '';
  return {
    delimiters: d,
    sendingApplication: field(3),
    sendingFacility: field(4),
    receivingApplication: field(5),
    receivingFacility: field(6),
    controlId: field(10).split(d.component)[0],
    trigger: field(9).split(d.component)[1] ?? '',
    processingId: field(11),
    version: field(12).split(d.component)[0],
    ...(charset && resolveCharset(charset) ? { charset } : {}),
  };
}
