/**
 * The parsed form of an HL7 v2 message, shared by the parser, the mapping engine, the ACK
 * builder and the dead-letter store. Values are already decoded: text in the message's
 * character set (MSH-18) turned into JS strings, escape sequences (\F\ \S\ \T\ \R\ \E\ \X..\
 * \.br\) resolved. Positions are kept so that an error can name segment, field and component.
 */

/** The separators a message declares in MSH-1 and MSH-2. */
export interface Delimiters {
  readonly field: string;
  readonly component: string;
  readonly repetition: string;
  readonly escape: string;
  readonly subcomponent: string;
  /** MSH-2 may carry a fifth character (truncation, v2.7+). */
  readonly truncation?: string;
}

/** One repetition of a field: its components, each a list of subcomponents. */
export type Hl7Repetition = readonly (readonly string[])[];

/** A field: its repetitions (an empty field has none). */
export type Hl7Field = readonly Hl7Repetition[];

export interface Hl7Segment {
  /** Segment id: `MSH`, `PID`, `OBX`, `ZPI` … */
  readonly name: string;
  /** 1-based position of the segment in the message (for ERR-2 and error messages). */
  readonly position: number;
  /**
   * Fields by HL7 number: fields[1] is PID-1. For MSH, fields[1] is the field separator and
   * fields[2] the encoding characters, as the standard numbers them.
   */
  readonly fields: readonly Hl7Field[];
}

export interface Hl7Message {
  readonly delimiters: Delimiters;
  readonly segments: readonly Hl7Segment[];
  /** Character set the bytes were decoded with (from MSH-18, the sender's default, or UTF-8). */
  readonly charset: string;
  /** The decoded text of the whole message, segments separated by \r. */
  readonly text: string;
}

/** Where something sits in a message, as HL7 ERR-2 (error location) names it. */
export interface Hl7Location {
  readonly segment: string;
  /** 1-based segment position in the message. */
  readonly position?: number;
  readonly field?: number;
  readonly repetition?: number;
  readonly component?: number;
  readonly subcomponent?: number;
}

/** `PID-3[2].1`: segment-field[repetition].component.subcomponent, 1-based, for messages. */
export function formatLocation(l: Hl7Location): string {
  let s = l.segment;
  if (l.field !== undefined) s += `-${l.field}`;
  if (l.repetition !== undefined && l.repetition > 1) s += `[${l.repetition}]`;
  if (l.component !== undefined) s += `.${l.component}`;
  if (l.subcomponent !== undefined) s += `.${l.subcomponent}`;
  return s;
}

/**
 * Reads one value: field f, repetition r (1-based, default 1), component c (default 1),
 * subcomponent s (default 1). Missing parts read as ''.
 */
export function valueAt(seg: Hl7Segment | undefined, f: number, c = 1, s = 1, r = 1): string {
  return seg?.fields[f]?.[r - 1]?.[c - 1]?.[s - 1] ?? '';
}
