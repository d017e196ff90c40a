/**
 * Search of the audit trail for auditors: FHIR search parameters of AuditEvent translated to SQL
 * with bind parameters over the indexed columns of audit_event (never over its JSON), keyset
 * paging by (recorded, id), and a streamed export of a time range.
 */
import type { Queryable } from '../store/index.js';
import { GatewayError } from '../errors.js';
import { plainReference } from './event.js';

export type AuditQuery = Record<string, string | string[] | undefined>;

export interface AuditSearch {
  /** SQL conditions joined by AND, with $n placeholders into params. */
  readonly where: string[];
  readonly params: unknown[];
  readonly count: number;
  readonly descending: boolean;
  readonly cursor?: { recorded: string; id: string };
  /** Patients named in the query (recorded in the audit of the search itself). */
  readonly patients: string[];
}

export interface SearchLimits {
  readonly defaultCount: number;
  readonly maxCount: number;
}

const ACTIONS = new Set(['C', 'R', 'U', 'D', 'E']);
const OUTCOMES = new Set(['0', '4', '8', '12']);
/** Parameters that take a single value. */
const CONTROL = new Set(['_count', '_sort', '_cursor', '_format']);

function bad(message: string, param: string): GatewayError {
  return new GatewayError('GW_ERR_INVALID_SEARCH', message, { expression: param });
}

function valuesOf(q: AuditQuery, name: string): string[] {
  return ([] as string[]).concat(q[name] ?? []);
}

/** Lower (inclusive) and upper (exclusive) instants of a FHIR date or dateTime at its precision; UTC when no offset. */
export function dateRange(value: string, param: string): { lo: Date; hi: Date } {
  const m = /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/.exec(value);
  if (!m) throw bad(`${param}: "${value}" is not a date (YYYY, YYYY-MM, YYYY-MM-DD or an instant)`, param);
  const [, y, mo, d, h, mi, s, frac, tz] = m;
  const offsetMs = !tz || tz === 'Z' ? 0 : (tz[0] === '-' ? -1 : 1) * (Number(tz.slice(1, 3)) * 60 + Number(tz.slice(4, 6))) * 60_000;
  const ms = frac ? Math.floor(Number(`0${frac}`) * 1000) : 0;
  const base = Date.UTC(Number(y), Number(mo ?? 1) - 1, Number(d ?? 1), Number(h ?? 0), Number(mi ?? 0), Number(s ?? 0), ms) - offsetMs;
  const lo = new Date(base);
  const day = new Date(Date.UTC(Number(y), Number(mo ?? 1) - 1, Number(d ?? 1)));
  if (Number.isNaN(base) || day.getUTCMonth() !== Number(mo ?? 1) - 1 || day.getUTCDate() !== Number(d ?? 1) || Number(h ?? 0) > 23 || Number(mi ?? 0) > 59 || Number(s ?? 0) > 59) {
    throw bad(`${param}: "${value}" is not a valid date`, param);
  }
  let hi: Date;
  if (!mo) hi = new Date(Date.UTC(Number(y) + 1, 0, 1));
  else if (!d) hi = new Date(Date.UTC(Number(y), Number(mo), 1));
  else if (!h) hi = new Date(base + 86_400_000);
  else if (!s) hi = new Date(base + 60_000);
  else if (!frac) hi = new Date(base + 1000);
  else hi = new Date(base + 1);
  return { lo, hi };
}

function patientRef(v: string): string {
  if (/^[A-Za-z0-9\-.]{1,64}$/.test(v)) return `Patient/${v}`;
  const ref = plainReference(v);
  if (!ref || !ref.startsWith('Patient/')) throw bad(`patient: "${v}" is not a Patient reference`, 'patient');
  return ref;
}

function entityRef(v: string): string {
  const ref = plainReference(v);
  if (!ref) throw bad(`entity: "${v}" is not a reference of the form Type/id`, 'entity');
  return ref;
}

function tokenCode(v: string): string {
  const i = v.indexOf('|');
  return i === -1 ? v : v.slice(i + 1);
}

export function encodeCursor(recorded: string, id: string): string {
  return Buffer.from(JSON.stringify([recorded, id])).toString('base64url');
}

function decodeCursor(raw: string): { recorded: string; id: string } {
  try {
    const [recorded, id] = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as unknown[];
    if (typeof recorded === 'string' && typeof id === 'string' && !Number.isNaN(Date.parse(recorded))) return { recorded, id };
  } catch {
    // fall through
  }
  throw bad('_cursor is not a cursor this server issued', '_cursor');
}

/** Parses the query of `GET /AuditEvent`; unknown parameters and modifiers are refused. */
export function parseAuditSearch(query: AuditQuery, limits: SearchLimits): AuditSearch {
  const where: string[] = [];
  const params: unknown[] = [];
  const bind = (v: unknown) => `$${params.push(v)}`;
  const patients: string[] = [];
  for (const [name, raw] of Object.entries(query)) {
    if (raw === undefined) continue;
    const list = ([] as string[]).concat(raw);
    if (CONTROL.has(name)) {
      if (list.length > 1) throw bad(`${name} is given more than once`, name);
      continue;
    }
    for (const value of list) {
      const any = value.split(',').filter((v) => v !== '');
      if (any.length === 0) throw bad(`${name} has no value`, name);
      switch (name) {
        case 'patient': {
          const refs = any.map(patientRef);
          patients.push(...refs);
          where.push(`patient_refs && ${bind(refs)}::text[]`);
          break;
        }
        case 'entity':
          where.push(`entity_refs && ${bind(any.map(entityRef))}::text[]`);
          break;
        case 'agent':
          where.push(`client_id = ANY(${bind(any.map((v) => tokenCode(v)))}::text[])`);
          break;
        case 'altid':
          where.push(`user_id = ANY(${bind(any.map((v) => tokenCode(v)))}::text[])`);
          break;
        case 'institution':
          where.push(`institution = ANY(${bind(any.map((v) => tokenCode(v)))}::text[])`);
          break;
        case 'address':
          where.push(`source_ip = ANY(${bind(any)}::text[])`);
          break;
        case '_id':
          where.push(`id = ANY(${bind(any)}::text[])`);
          break;
        case 'action':
          for (const a of any) if (!ACTIONS.has(a)) throw bad(`action: "${a}" is not one of C, R, U, D, E`, name);
          where.push(`action = ANY(${bind(any)}::text[])`);
          break;
        case 'outcome':
          for (const o of any) if (!OUTCOMES.has(o)) throw bad(`outcome: "${o}" is not one of 0, 4, 8, 12`, name);
          where.push(`outcome = ANY(${bind(any)}::text[])`);
          break;
        case 'subtype':
          where.push(`subtype = ANY(${bind(any.map(tokenCode))}::text[])`);
          break;
        case 'date':
          where.push(`(${any.map((v) => dateCondition(v, bind)).join(' OR ')})`);
          break;
        default:
          throw new GatewayError('GW_ERR_UNSUPPORTED_SEARCH', `AuditEvent search does not support "${name}"; use patient, patient:identifier, agent, altid, institution, entity, date, action, outcome, subtype, address, _id`, { expression: name });
      }
    }
  }
  const countRaw = valuesOf(query, '_count')[0];
  let count = limits.defaultCount;
  if (countRaw !== undefined) {
    if (!/^\d{1,7}$/.test(countRaw)) throw bad(`_count: "${countRaw}" is not a whole number`, '_count');
    count = Math.min(Number(countRaw), limits.maxCount);
  }
  const sort = valuesOf(query, '_sort')[0] ?? '-date';
  if (sort !== 'date' && sort !== '-date') throw bad(`_sort: only date and -date are supported, not "${sort}"`, '_sort');
  const cursorRaw = valuesOf(query, '_cursor')[0];
  return { where, params, count, descending: sort === '-date', ...(cursorRaw ? { cursor: decodeCursor(cursorRaw) } : {}), patients };
}

function dateCondition(value: string, bind: (v: unknown) => string): string {
  const m = /^(eq|ne|gt|lt|ge|le|sa|eb|ap)?(.*)$/.exec(value) as RegExpExecArray;
  const prefix = m[1] ?? 'eq';
  const { lo, hi } = dateRange(m[2], 'date');
  switch (prefix) {
    case 'eq':
      return `(recorded >= ${bind(lo.toISOString())}::timestamptz AND recorded < ${bind(hi.toISOString())}::timestamptz)`;
    case 'ge':
      return `recorded >= ${bind(lo.toISOString())}::timestamptz`;
    case 'gt':
      return `recorded >= ${bind(hi.toISOString())}::timestamptz`;
    case 'le':
      return `recorded < ${bind(hi.toISOString())}::timestamptz`;
    case 'lt':
      return `recorded < ${bind(lo.toISOString())}::timestamptz`;
    default:
      throw bad(`date: prefix ${prefix} is not supported; use eq, ge, gt, le, lt`, 'date');
  }
}

interface PageRow {
  recorded: Date | string;
  id: string;
  content: string;
}

export interface AuditPage {
  /** AuditEvent JSON texts, as stored. */
  readonly contents: string[];
  readonly ids: string[];
  /** Cursor of the next page, when there is one. */
  readonly next?: string;
}

/** One page of a parsed search, in (recorded, id) order. */
export async function searchAuditEvents(q: Queryable, s: AuditSearch): Promise<AuditPage> {
  const where = [...s.where];
  const params = [...s.params];
  const bind = (v: unknown) => `$${params.push(v)}`;
  const dir = s.descending ? 'DESC' : 'ASC';
  if (s.cursor) where.push(`(recorded, id) ${s.descending ? '<' : '>'} (${bind(s.cursor.recorded)}::timestamptz, ${bind(s.cursor.id)})`);
  const sql = `SELECT recorded, id, content FROM audit_event ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
    ORDER BY recorded ${dir}, id ${dir} LIMIT ${bind(s.count + 1)}`;
  const { rows } = await q.query<PageRow>(sql, params);
  const page = rows.slice(0, s.count);
  const last = page[page.length - 1];
  return {
    contents: page.map((r) => r.content),
    ids: page.map((r) => r.id),
    ...(rows.length > s.count && last ? { next: encodeCursor(new Date(last.recorded).toISOString(), last.id) } : {}),
  };
}

/** The AuditEvent JSON of id, or undefined. */
export async function readAuditEvent(q: Queryable, id: string): Promise<string | undefined> {
  const { rows } = await q.query<{ content: string }>('SELECT content FROM audit_event WHERE id = $1 LIMIT 1', [id]);
  return rows[0]?.content;
}

/**
 * The AuditEvents recorded in [start, end), oldest first, as NDJSON lines, read in batches by
 * keyset so that memory stays bounded whatever the range.
 */
export async function* exportAuditEvents(q: Queryable, start: Date, end: Date, batchSize = 1000): AsyncGenerator<string> {
  let after: { recorded: string; id: string } | undefined;
  for (;;) {
    const params: unknown[] = [start.toISOString(), end.toISOString(), batchSize];
    const keyset = after ? `AND (recorded, id) > ($4::timestamptz, $5)` : '';
    if (after) params.push(after.recorded, after.id);
    const { rows } = await q.query<PageRow>(
      `SELECT recorded, id, content FROM audit_event
        WHERE recorded >= $1::timestamptz AND recorded < $2::timestamptz ${keyset}
        ORDER BY recorded, id LIMIT $3`,
      params,
    );
    if (rows.length > 0) yield rows.map((r) => `${r.content}\n`).join('');
    if (rows.length < batchSize) return;
    const last = rows[rows.length - 1];
    after = { recorded: new Date(last.recorded).toISOString(), id: last.id };
  }
}
