/**
 * The one error type the HL7 v2 parser, charset detection and batch splitter throw. Each carries
 * a stable reason code (tests and dead letters key on it), where in the message it happened, and
 * the HL7 table 0357 code an ACK should report for it.
 */
import { formatLocation, type Hl7Location } from './model.js';

export const HL7_PARSE_ERRORS = {
  /** Nothing but whitespace (or a BOM) was received. */
  HL7_EMPTY: '100',
  /** The first segment is not MSH (or a batch holds segments outside any MSH). */
  HL7_NO_MSH: '100',
  /** MSH-1/MSH-2 missing, too short, repeated characters or letters/digits as delimiters. */
  HL7_BAD_ENCODING_CHARS: '102',
  /** A segment id that is not three upper-case letters or digits (e.g. a line break inside a field). */
  HL7_BAD_SEGMENT_NAME: '100',
  /** MSH-18 names a character set this gateway cannot decode. */
  HL7_UNKNOWN_CHARSET: '103',
  /** A batch header (BHS/FHS) without its trailer, or a trailer whose count disagrees. */
  HL7_BAD_BATCH: '100',
} as const;

export type Hl7ParseErrorCode = keyof typeof HL7_PARSE_ERRORS;

export class Hl7ParseError extends Error {
  /** HL7 table 0357 message error condition code, for ERR-3 of the ACK. */
  readonly hl7ErrorCode: string;

  constructor(
    readonly code: Hl7ParseErrorCode,
    message: string,
    readonly location: Hl7Location,
  ) {
    super(`${formatLocation(location)}${location.position ? ` (segment ${location.position})` : ''}: ${message}`);
    this.name = 'Hl7ParseError';
    this.hl7ErrorCode = HL7_PARSE_ERRORS[code];
  }
}

export function isHl7ParseError(e: unknown): e is Hl7ParseError {
  return e instanceof Hl7ParseError;
}
