/**
 * The fixed registry of value functions a mapping file may name. Each declares its parameters;
 * the loader refuses a file that names an unknown function or passes an undeclared argument, so
 * nothing is looked up by name at run time that was not checked at start.
 */
import { FHIR_BASE, ID_CARD_SYSTEM, mrnSystem } from '../../../fhir/systems.js';
import { checkIdCard } from '../../../mpi/index.js';
import { scalar, type Node } from './path.js';
import { HL7_ERROR, type Hl7ErrorCode } from './errors.js';
import { LOCAL_SYSTEM_PREFIX } from '../../../terminology/index.js';

/** A value that cannot be converted; the engine turns it into a warning or a MappingError. */
export class ConversionError extends Error {
  constructor(
    message: string,
    readonly hl7Code: Hl7ErrorCode = HL7_ERROR.DATA_TYPE_ERROR,
  ) {
    super(message);
    this.name = 'ConversionError';
  }
}

/** Arguments as the engine hands them over: a path gives every value it names, const/var their value. */
export type FnArgs = Readonly<Record<string, unknown>>;

export interface FnEnv {
  /** UTC offset used for timestamps that carry none (`+08:00`). */
  readonly timezone: string;
  readonly tables: ReadonlyMap<string, ReadonlyMap<string, unknown>>;
}

export interface ValueFn {
  readonly params: readonly string[];
  /** False when the function reads only its arguments (no `from`). */
  readonly input: boolean;
  readonly run: (input: Node | undefined, args: FnArgs, env: FnEnv) => unknown;
}

export const UCUM = 'http://unitsofmeasure.org';
/** Local codes of the sender's institution: `…/CodeSystem/local/<USCC>[/<namespace>]`. */
export const LOCAL_CODE_SYSTEM_PREFIX = LOCAL_SYSTEM_PREFIX;

function str(v: unknown): string | undefined {
  if (typeof v === 'string') return v === '' ? undefined : v;
  if (Array.isArray(v)) {
    const s = scalar(v[0] as Node | undefined);
    return s === '' ? undefined : s;
  }
  return undefined;
}

function nodes(v: unknown): Node[] {
  return Array.isArray(v) ? (v as Node[]) : [];
}

function comp(n: Node | undefined, c: number, s = 1): string {
  const v = n?.data[c - 1]?.[s - 1] ?? '';
  return v === '""' ? '' : v;
}

// ---------------------------------------------------------------- dates and numbers

const TS = /^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2}(?:\.\d{1,4})?)?([+-]\d{4})?$/;

/** HL7 TS/DTM/DT → FHIR dateTime (`dateOnly` cuts to a date). */
export function hl7DateTime(raw: string, timezone: string, dateOnly = false): string {
  const m = TS.exec(raw.trim());
  if (!m) throw new ConversionError(`"${raw}" is not an HL7 date/time`);
  const [, y, mo, d, h, mi, s, tz] = m;
  if (mo && (Number(mo) < 1 || Number(mo) > 12)) throw new ConversionError(`"${raw}" has month ${mo}`);
  if (d) {
    const last = new Date(Date.UTC(Number(y), Number(mo), 0)).getUTCDate();
    if (Number(d) < 1 || Number(d) > last) throw new ConversionError(`"${raw}" has day ${d}`);
  }
  if ((h && Number(h) > 23) || (mi && Number(mi) > 59) || (s && Number(s) >= 60)) throw new ConversionError(`"${raw}" has an invalid time`);
  let out = y + (mo ? `-${mo}` : '') + (d ? `-${d}` : '');
  if (dateOnly || !h) return out;
  if (!d) return out;
  out += `T${h}:${mi ?? '00'}:${s ?? '00'}`;
  const off = tz ? `${tz.slice(0, 3)}:${tz.slice(3)}` : timezone;
  return out + (off === '+00:00' || off === '-00:00' ? 'Z' : off);
}

function hl7Time(raw: string): string {
  const m = /^(\d{2})(\d{2})?(\d{2}(?:\.\d{1,4})?)?(?:[+-]\d{4})?$/.exec(raw.trim());
  if (!m || Number(m[1]) > 23 || Number(m[2] ?? 0) > 59) throw new ConversionError(`"${raw}" is not an HL7 time`);
  return `${m[1]}:${m[2] ?? '00'}:${m[3] ?? '00'}`;
}

export function hl7Number(raw: string): number {
  const t = raw.trim();
  if (!/^[+-]?(\d+\.?\d*|\.\d+)$/.test(t)) throw new ConversionError(`"${raw}" is not a number`);
  return Number(t);
}

// ---------------------------------------------------------------- codes and units

/** URI of a coding system named in a CWE/CE (`LN`, `SCT`, `I10`, `HL70078`, a local name or none). */
export function codingSystemUri(name: string | undefined, institution: string | undefined, env: FnEnv): string {
  const local = LOCAL_CODE_SYSTEM_PREFIX + (institution ?? 'unknown');
  if (!name || name === 'L' || name === '99LOCAL') return local;
  const known = env.tables.get('codingSystems')?.get(name.toUpperCase());
  if (typeof known === 'string') return known;
  const v2 = /^HL7(\d{4})$/i.exec(name);
  if (v2) return `http://terminology.hl7.org/CodeSystem/v2-${v2[1]}`;
  if (/^\d+(\.\d+)+$/.test(name)) return `urn:oid:${name}`;
  return `${local}/${encodeURIComponent(name)}`;
}

interface Quantity {
  value?: number;
  comparator?: string;
  unit?: string;
  system?: string;
  code?: string;
}

function unitOf(units: unknown, env: FnEnv, institution: string | undefined): Omit<Quantity, 'value'> {
  const u = nodes(units)[0];
  const code = comp(u, 1);
  if (!code) return {};
  const name = comp(u, 3);
  const system = !name || /^(UCUM|ANS\+|ISO\+)$/i.test(name) ? UCUM : codingSystemUri(name, institution, env);
  return { unit: comp(u, 2) || code, system, code };
}

function quantity(value: number, units: unknown, env: FnEnv, institution: string | undefined, comparator?: string): Quantity {
  return { value, ...(comparator ? { comparator } : {}), ...unitOf(units, env, institution) };
}

const COMPARATORS = new Set(['<', '<=', '>', '>=']);

/** SN: comparator ^ num1 ^ separator/suffix ^ num2 → Quantity, Range, Ratio or string. */
function structuredNumeric(n: Node | undefined, args: FnArgs, env: FnEnv): unknown {
  const inst = str(args.institution);
  const [cmp, n1, sep, n2] = [comp(n, 1), comp(n, 2), comp(n, 3), comp(n, 4)];
  if (sep === '-' && n1 && n2) return { valueRange: { low: quantity(hl7Number(n1), args.units, env, inst), high: quantity(hl7Number(n2), args.units, env, inst) } };
  if ((sep === ':' || sep === '/') && n1 && n2) {
    return { valueRatio: { numerator: { value: hl7Number(n1) }, denominator: { value: hl7Number(n2) } } };
  }
  if (!sep && !n2 && n1 && (cmp === '' || cmp === '=' || COMPARATORS.has(cmp))) {
    return { valueQuantity: quantity(hl7Number(n1), args.units, env, inst, COMPARATORS.has(cmp) ? cmp : undefined) };
  }
  const text = [cmp, n1, sep, n2].join('');
  if (!text) return undefined;
  return { valueString: text };
}

/** OBX-7 `3.5-5.0`, `4.3 to 6.2`, `70_105`, `<0.50 IU/mL`, `>=10`, or free text. */
function referenceRange(n: Node | undefined, args: FnArgs, env: FnEnv): unknown {
  const text = scalar(n).trim();
  if (!text) return undefined;
  const inst = str(args.institution);
  const num = '([+-]?\\d+(?:\\.\\d+)?)';
  const between = new RegExp(`^${num}\\s*(?:-|_|~|to|–|—|～)\\s*${num}(?:\\s*\\S.*)?$`, 'i').exec(text);
  if (between) return { low: quantity(Number(between[1]), args.units, env, inst), high: quantity(Number(between[2]), args.units, env, inst), text };
  const bound = new RegExp(`^(<=|<|≤|>=|>|≥)\\s*${num}(?:\\s*\\S.*)?$`).exec(text);
  if (bound) {
    const q = quantity(Number(bound[2]), args.units, env, inst);
    return /[<≤]/.test(bound[1]) ? { high: q, text } : { low: q, text };
  }
  return { text };
}

// ---------------------------------------------------------------- identifiers

/** Tells whether a CX names the resident ID card: type NNCHN, the card's OID as authority, or a valid 18-char number. */
function isIdCard(n: Node | undefined): boolean {
  const value = comp(n, 1);
  if (comp(n, 5).toUpperCase() === 'NNCHN') return true;
  if (comp(n, 4, 2) === '2.16.156.10011.1.3' || comp(n, 4, 1) === '2.16.156.10011.1.3') return true;
  return value.length === 18 && checkIdCard(value).ok;
}

const MRN_TYPES = new Set(['', 'MR', 'PI', 'PT', 'MRN']);

function authoritySystem(n: Node | undefined): string | undefined {
  const [ns, uid, uidType] = [comp(n, 4, 1), comp(n, 4, 2), comp(n, 4, 3)];
  if (uid && (uidType.toUpperCase() === 'ISO' || /^\d+(\.\d+)+$/.test(uid))) return `urn:oid:${uid}`;
  if (ns) return `${FHIR_BASE}/sid/authority/${encodeURIComponent(ns)}`;
  return undefined;
}

/** System of a CX: the ID card OID, the sending institution's MRN system, or its assigning authority. */
function cxSystem(n: Node | undefined, args: FnArgs): unknown {
  const kind = str(args.kind) ?? 'patient';
  const institution = str(args.institution);
  if (kind !== 'patient') {
    if (institution) return `${FHIR_BASE}/sid/${kind}/${institution}`;
    return authoritySystem(n);
  }
  if (isIdCard(n)) return ID_CARD_SYSTEM;
  const own = str(args.assigningAuthority);
  const authority = comp(n, 4, 1);
  const mrn = str(args.mrnSystem) ?? (institution ? mrnSystem(institution) : undefined);
  if (mrn && MRN_TYPES.has(comp(n, 5).toUpperCase()) && (!authority || !own || authority === own)) return mrn;
  return authoritySystem(n) ?? mrn;
}

function idCardValue(n: Node | undefined): unknown {
  const v = comp(n, 1);
  if (!isIdCard(n)) return v || undefined;
  const r = checkIdCard(v);
  return r.ok ? r.value : v;
}

/**
 * A person document number held in a plain field (PID-19 SSN number, PID-20 driver's licence DLN)
 * → Identifier typed from HL7 table 0203, as the v2-to-FHIR IG maps PID-19/20. A valid resident
 * ID card number (senders put it in PID-19) gets the ID card system and type NNCHN instead. The
 * system is `${FHIR_BASE}/sid/<kind>/<issuer>`: the issuer given (DLN.2), else the institution.
 */
function documentIdentifier(n: Node | undefined, args: FnArgs, env: FnEnv): unknown {
  const value = comp(n, 1).trim();
  if (!value) return undefined;
  const v2type = (code: string): unknown => ({ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code }] });
  const card = checkIdCard(value);
  if (value.length === 18 && card.ok) return { type: v2type('NNCHN'), system: ID_CARD_SYSTEM, value: card.value };
  const issuer = str(args.issuer) ?? str(args.institution) ?? '-';
  const expires = str(args.expires);
  return {
    type: v2type(str(args.type) ?? 'PN'),
    system: `${FHIR_BASE}/sid/${str(args.kind) ?? 'document'}/${encodeURIComponent(issuer)}`,
    value,
    ...(expires ? { period: { end: hl7DateTime(expires, env.timezone, true) } } : {}),
  };
}

/** EI (placer/filler order number) → Identifier with type PLAC/FILL. */
function eiIdentifier(n: Node | undefined, args: FnArgs): unknown {
  const value = comp(n, 1);
  if (!value) return undefined;
  const type = str(args.type) ?? 'FILL';
  const [ns, uid, uidType] = [comp(n, 2), comp(n, 3), comp(n, 4)];
  const institution = str(args.institution);
  const system =
    uid && (uidType.toUpperCase() === 'ISO' || /^\d+(\.\d+)+$/.test(uid))
      ? `urn:oid:${uid}`
      : `${FHIR_BASE}/sid/order/${encodeURIComponent(institution ?? '-')}/${encodeURIComponent(ns || '-')}`;
  return { type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: type }] }, system, value };
}

/** A composite key `p1|p2|…` under `${FHIR_BASE}/sid/<kind>/<institution>`; absent without p1. */
function keyIdentifier(_n: Node | undefined, args: FnArgs): unknown {
  const parts = ['p1', 'p2', 'p3', 'p4'].map((k) => str(args[k]) ?? '');
  if (!parts[0]) return undefined;
  while (parts.length > 1 && parts[parts.length - 1] === '') parts.pop();
  const system = `${FHIR_BASE}/sid/${str(args.kind) ?? 'key'}/${encodeURIComponent(str(args.institution) ?? '-')}`;
  return { system, value: parts.join('|') };
}

// ---------------------------------------------------------------- text

function joinText(_n: Node | undefined, args: FnArgs): unknown {
  const lines = nodes(args.lines).map(scalar);
  return lines.length ? lines.join('\n') : undefined;
}

function textAttachment(_n: Node | undefined, args: FnArgs): unknown {
  const text = joinText(undefined, args);
  if (typeof text !== 'string') return undefined;
  return { contentType: 'text/plain; charset=utf-8', data: Buffer.from(text, 'utf8').toString('base64') };
}

/**
 * Where R4 has no Observation.valueAttachment, the v2-to-FHIR IG carries an OBX-5 of type ED or RP in
 * R5's element as a cross-version extension (its OBX[Observation] map, URL as written there).
 */
const OBSERVATION_ATTACHMENT_EXTENSION = 'https://hl7.org/fhir/5.0/StructureDefinition/extension-Observation.valueAttachment';

/** HL7 table 0291 data subtypes (and the PDF/PNG senders use) to MIME types. */
const SUBTYPE_MIME: Readonly<Record<string, string>> = {
  PDF: 'application/pdf',
  JPEG: 'image/jpeg',
  JPG: 'image/jpeg',
  PNG: 'image/png',
  GIF: 'image/gif',
  TIFF: 'image/tiff',
  PICT: 'image/pict',
  DICOM: 'application/dicom',
  HTML: 'text/html',
  XML: 'application/xml',
  RTF: 'application/rtf',
  SGML: 'text/sgml',
  POSTSCRIPT: 'application/postscript',
  BASIC: 'audio/basic',
  'OCTET-STREAM': 'application/octet-stream',
  'X-HL7-CDA-LEVEL-ONE': 'application/x-hl7-cda-level-one+xml',
};

function mimeType(type: string, subtype: string): string | undefined {
  const known = SUBTYPE_MIME[subtype.toUpperCase()];
  if (known) return known;
  if (/^[a-z]+\/[\w.+-]+$/i.test(subtype)) return subtype.toLowerCase();
  return type.toUpperCase() === 'TEXT' || type.toUpperCase() === 'TX' ? 'text/plain' : subtype ? 'application/octet-stream' : undefined;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * OBX-5 of type ED (source^type^subtype^encoding^data) or RP (pointer^application^type^subtype) as
 * the IG's valueAttachment extension: the encapsulated data as base64 (Base64 kept, Hex and ASCII
 * encoded), the pointer as the attachment's URL when it is one, else as its title.
 */
function observationAttachment(n: Node | undefined, args: FnArgs): unknown {
  let attachment: Record<string, string | undefined>;
  if (str(args.type)?.toUpperCase() === 'RP') {
    const pointer = comp(n, 1).trim();
    if (!pointer) return undefined;
    const absolute = /^[a-z][a-z0-9+.-]*:\S+$/i.test(pointer);
    attachment = { contentType: mimeType(comp(n, 3), comp(n, 4)), url: absolute ? pointer : undefined, title: absolute ? undefined : [comp(n, 2), pointer].filter(Boolean).join(':') };
  } else {
    const raw = comp(n, 5);
    if (!raw) return undefined;
    const encoding = comp(n, 4).toUpperCase();
    let data: string;
    if (encoding === 'BASE64') {
      data = raw.replace(/\s+/g, '');
      if (!BASE64.test(data) || data.length % 4 !== 0) throw new ConversionError('the encapsulated data is not valid base64');
    } else if (encoding === 'HEX') {
      if (!/^([0-9a-f]{2})*$/i.test(raw)) throw new ConversionError('the encapsulated data is not valid hexadecimal');
      data = Buffer.from(raw, 'hex').toString('base64');
    } else if (encoding === 'A' || encoding === '') data = Buffer.from(raw, 'utf8').toString('base64');
    else throw new ConversionError(`"${comp(n, 4)}" is not an ED encoding (A, Hex, Base64)`, HL7_ERROR.TABLE_VALUE_NOT_FOUND);
    attachment = { contentType: mimeType(comp(n, 2), comp(n, 3)), data };
  }
  for (const k of Object.keys(attachment)) if (!attachment[k]) delete attachment[k];
  return { url: OBSERVATION_ATTACHMENT_EXTENSION, valueAttachment: attachment };
}

// ---------------------------------------------------------------- insurance

/** A Coverage.class (plan, group …) from a value and an optional name; absent without a value. */
function coverageClass(_n: Node | undefined, args: FnArgs): unknown {
  const value = str(args.value);
  if (!value) return undefined;
  const type = str(args.type) ?? 'plan';
  return { type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/coverage-class', code: type }] }, value, name: str(args.name) };
}

export const VALUE_FUNCTIONS: Readonly<Record<string, ValueFn>> = {
  string: { params: [], input: true, run: (n) => scalar(n) || undefined },
  dateTime: { params: [], input: true, run: (n, _a, env) => hl7DateTime(scalar(n), env.timezone) },
  date: { params: [], input: true, run: (n, _a, env) => hl7DateTime(scalar(n), env.timezone, true) },
  instant: {
    params: [],
    input: true,
    run: (n, _a, env) => {
      const v = hl7DateTime(scalar(n), env.timezone);
      if (!v.includes('T')) throw new ConversionError(`"${scalar(n)}" has no time of day: not an instant`);
      return v;
    },
  },
  time: { params: [], input: true, run: (n) => hl7Time(scalar(n)) },
  decimal: { params: [], input: true, run: (n) => hl7Number(scalar(n)) },
  integer: {
    params: [],
    input: true,
    run: (n) => {
      const v = hl7Number(scalar(n));
      if (!Number.isInteger(v)) throw new ConversionError(`"${scalar(n)}" is not an integer`);
      return v;
    },
  },
  quantity: { params: ['units', 'institution'], input: true, run: (n, a, env) => quantity(hl7Number(scalar(n)), a.units, env, str(a.institution)) },
  structuredNumeric: { params: ['units', 'institution'], input: true, run: structuredNumeric },
  referenceRange: { params: ['units', 'institution'], input: true, run: referenceRange },
  codingSystem: { params: ['institution'], input: true, run: (n, a, env) => codingSystemUri(scalar(n) || undefined, str(a.institution), env) },
  localCodingSystem: { params: ['institution'], input: false, run: (_n, a, env) => codingSystemUri(undefined, str(a.institution), env) },
  cxSystem: { params: ['kind', 'institution', 'mrnSystem', 'assigningAuthority'], input: true, run: cxSystem },
  cxValue: { params: [], input: true, run: idCardValue },
  documentIdentifier: { params: ['type', 'kind', 'institution', 'issuer', 'expires'], input: true, run: documentIdentifier },
  eiIdentifier: { params: ['type', 'institution'], input: true, run: eiIdentifier },
  keyIdentifier: { params: ['kind', 'institution', 'p1', 'p2', 'p3', 'p4'], input: false, run: keyIdentifier },
  joinText: { params: ['lines'], input: false, run: joinText },
  textAttachment: { params: ['lines'], input: false, run: textAttachment },
  observationAttachment: { params: ['type'], input: true, run: observationAttachment },
  coverageClass: { params: ['type', 'value', 'name'], input: false, run: coverageClass },
};
