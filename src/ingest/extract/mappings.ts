/**
 * The column declarations of HIS extracts (mappings/extract/<kind>.json), checked against
 * extract.schema.json when the gateway starts: a bad file fails start-up. A row is checked against
 * its kind's columns; each problem names the row's field.
 */
import { Ajv } from 'ajv';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export type ColumnType = 'string' | 'code' | 'date' | 'datetime' | 'decimal' | 'integer' | 'boolean';

export interface Column {
  readonly name: string;
  readonly type: ColumnType;
  readonly required?: boolean;
  readonly maxLength?: number;
  readonly values?: readonly string[];
}

export interface ExtractMapping {
  readonly kind: string;
  readonly resourceType: string;
  readonly columns: readonly Column[];
}

export const DEFAULT_EXTRACT_MAPPINGS_DIR = fileURLToPath(new URL('../../../mappings/extract', import.meta.url));

export class ExtractMappingError extends Error {
  override readonly name = 'ExtractMappingError';
}

export function loadExtractMappings(dir: string = DEFAULT_EXTRACT_MAPPINGS_DIR): ReadonlyMap<string, ExtractMapping> {
  const ajv = new Ajv({ allErrors: true, strict: false });
  const validate = ajv.compile(JSON.parse(readFileSync(join(dir, 'extract.schema.json'), 'utf8')) as object);
  const out = new Map<string, ExtractMapping>();
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.json') && f !== 'extract.schema.json').sort()) {
    const data = JSON.parse(readFileSync(join(dir, file), 'utf8')) as unknown;
    if (!validate(data)) {
      throw new ExtractMappingError(`${file}: ${(validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''}`).join('; ')}`);
    }
    const m = data as ExtractMapping;
    if (`${m.kind}.json` !== file) throw new ExtractMappingError(`${file}: kind "${m.kind}" does not match the file name`);
    const names = new Set<string>();
    for (const c of m.columns) {
      if (names.has(c.name)) throw new ExtractMappingError(`${file}: column "${c.name}" declared twice`);
      names.add(c.name);
    }
    out.set(m.kind, m);
  }
  return out;
}

export type Value = string | number | boolean;
export type Row = Readonly<Record<string, Value | undefined>>;
export interface FieldError {
  readonly field: string;
  readonly message: string;
}

const DATE = /^(\d{4})-?(\d{2})-?(\d{2})$/;
const DATETIME = /^(\d{4})-?(\d{2})-?(\d{2})[T ]?(\d{2}):?(\d{2})(?::?(\d{2}))?(\.\d{1,6})?(Z|[+-]\d{2}:?\d{2})?$/;
const DECIMAL = /^[+-]?(\d+(\.\d*)?|\.\d+)$/;
const INTEGER = /^[+-]?\d{1,15}$/;
const TRUE = new Set(['1', 'y', 'Y', 'true', 'TRUE', '是']);
const FALSE = new Set(['0', 'n', 'N', 'false', 'FALSE', '否']);

function validDate(y: string, m: string, d: string): boolean {
  const dt = new Date(Date.UTC(Number(y), Number(m) - 1, Number(d)));
  return dt.getUTCFullYear() === Number(y) && dt.getUTCMonth() === Number(m) - 1 && dt.getUTCDate() === Number(d);
}

/** One cell → its typed value (dates as FHIR date, datetimes as FHIR dateTime at +08:00 when no offset), or an error message. */
function cell(c: Column, raw: unknown): { value?: Value; error?: string } {
  const text = raw === undefined || raw === null ? '' : typeof raw === 'string' ? raw.trim() : typeof raw === 'number' || typeof raw === 'boolean' ? String(raw) : undefined;
  if (text === undefined) return { error: 'is not a plain value' };
  if (text === '') return c.required ? { error: 'is required' } : {};
  switch (c.type) {
    case 'string':
      return c.maxLength && text.length > c.maxLength ? { error: `is longer than ${c.maxLength} characters` } : { value: text };
    case 'code':
      return c.values && !c.values.includes(text) ? { error: `"${text.slice(0, 40)}" is not one of ${c.values.join(', ')}` } : { value: text };
    case 'date': {
      const m = DATE.exec(text);
      return m && validDate(m[1], m[2], m[3]) ? { value: `${m[1]}-${m[2]}-${m[3]}` } : { error: `"${text.slice(0, 40)}" is not a date (YYYY-MM-DD)` };
    }
    case 'datetime': {
      const m = DATETIME.exec(text);
      if (!m || !validDate(m[1], m[2], m[3]) || Number(m[4]) > 23 || Number(m[5]) > 59 || Number(m[6] ?? 0) > 59) return { error: `"${text.slice(0, 40)}" is not a date and time (YYYY-MM-DD HH:MM[:SS])` };
      const tz = m[8] === undefined ? '+08:00' : m[8] === 'Z' ? 'Z' : `${m[8].slice(0, 3)}:${m[8].slice(-2)}`;
      return { value: `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6] ?? '00'}${m[7] ?? ''}${tz}` };
    }
    case 'decimal':
      return DECIMAL.test(text) ? { value: Number(text) } : { error: `"${text.slice(0, 40)}" is not a number` };
    case 'integer':
      return INTEGER.test(text) ? { value: Number(text) } : { error: `"${text.slice(0, 40)}" is not a whole number` };
    case 'boolean':
      return TRUE.has(text) ? { value: true } : FALSE.has(text) ? { value: false } : { error: `"${text.slice(0, 40)}" is not yes/no (1/0, Y/N, true/false, 是/否)` };
  }
}

/** Checks a row against the declared columns: its typed values, or every field error. */
export function checkRow(m: ExtractMapping, raw: Readonly<Record<string, unknown>>): { row: Row } | { errors: FieldError[] } {
  const row: Record<string, Value> = {};
  const errors: FieldError[] = [];
  for (const c of m.columns) {
    const r = cell(c, raw[c.name]);
    if (r.error) errors.push({ field: c.name, message: `${c.name} ${r.error}` });
    else if (r.value !== undefined) row[c.name] = r.value;
  }
  return errors.length ? { errors } : { row };
}

/** Columns of a CSV header that the mapping requires but the file lacks. */
export function missingColumns(m: ExtractMapping, header: readonly string[]): string[] {
  const have = new Set(header.map((h) => h.trim()));
  return m.columns.filter((c) => c.required && !have.has(c.name)).map((c) => c.name);
}
