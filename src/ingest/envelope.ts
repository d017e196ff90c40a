/**
 * The MSH envelope of a message, read straight from its bytes before the full parse: enough to
 * identify the sender (and so its default character set), and to label metrics and dead letters
 * even for a message that does not parse. Also the ACK builder of the pipeline, over the hl7v2
 * folder's.
 */
import { ackHeaderFromBytes, buildAckBytes, contentStart, decodeText, resolveCharset, type Hl7Location, type Hl7Message } from './hl7v2/index.js';

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
  /** MSH-15 and MSH-16 (enhanced acknowledgement mode when either is set). */
  readonly acceptAckType: string;
  readonly applicationAckType: string;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const gb18030 = new TextDecoder('gb18030');

/** The MSH segment's text: UTF-8 when it decodes as such, else GB18030 (a superset of GBK). */
function headerText(raw: Buffer): string | undefined {
  // A leading MLLP start byte, then the parser's own rule (BOM, blank lines) for where text starts.
  const bytes = raw[0] === 0x0b ? raw.subarray(1) : raw;
  const start = contentStart(bytes);
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
    acceptAckType: first(15),
    applicationAckType: first(16),
  };
}

/** The raw bytes as text in their character set (for people reading a dead letter); UTF-8 when unknown. */
export function decodeRaw(raw: Buffer, charset: string | undefined): string {
  return decodeText(raw, (charset && resolveCharset(charset)) || 'utf8');
}

// ---- acknowledgments ----

/** Application (and original-mode) codes AA/AE/AR; accept codes CA/CE/CR in enhanced mode. */
export type AckCode = 'AA' | 'AE' | 'AR' | 'CA' | 'CE' | 'CR';

export interface AckError {
  /** HL7 table 0357 code: 100 segment sequence, 101 required field missing, 102 data type, 103 table value not found, 200 unsupported message type, 203 unsupported version, 204 unknown key, 207 application internal error. */
  readonly hl7Code: string;
  readonly severity: 'E' | 'W' | 'I';
  readonly location?: Hl7Location;
  readonly text: string;
}

export interface AckRequest {
  /** The bytes received (the ACK header is read from them when the message did not parse). */
  readonly raw: Buffer;
  /** The parsed message when it parsed. */
  readonly message?: Hl7Message;
  /** Character set of the ACK when the message names none (the sender's default). */
  readonly fallbackCharset?: string;
  readonly code: AckCode;
  /** MSA-3 text. */
  readonly text?: string;
  readonly errors?: readonly AckError[];
}

/** Builds the ACK bytes of a message (no MLLP framing). */
export type AckBuilder = (req: AckRequest) => Buffer;

/**
 * The ACK of the hl7v2 folder: original mode, in the sender's version, delimiters and character
 * set. An error without a location (a refusal by the write path) points at MSH.
 */
export const hl7Ack: AckBuilder = (req) =>
  buildAckBytes(
    req.message ?? ackHeaderFromBytes(req.raw),
    {
      code: req.code,
      ...(req.text !== undefined ? { text: req.text.slice(0, 80) } : {}),
      errors: (req.errors ?? []).map((e) => ({ location: e.location ?? { segment: 'MSH', position: 1 }, hl7ErrorCode: e.hl7Code, severity: e.severity, text: e.text.slice(0, 250) })),
    },
    req.fallbackCharset,
  );
