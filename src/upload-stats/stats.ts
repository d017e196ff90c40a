/**
 * Upload completeness ($upload-stats): for one institution and period (or month by month, for the
 * console's charts), per resource type and feed
 * (the client that wrote it), how many resources were received and how complete they are against
 * the fields the regional platform requires (mappings/upload/required-fields.json, FHIRPath).
 * Completeness = required fields present / required fields expected; complete = resources with
 * every required field. Reads the current versions tagged with the institution and last updated in
 * the period, through the tag index, in pages; the month-by-month form reads its whole range once.
 */
import { evalFhirPath } from '@medplum/core';
import type { OperationDefinition, Parameters, ParametersParameter, Resource } from '@medplum/fhirtypes';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { GatewayError } from '../errors.js';
import { FHIR_BASE, INSTITUTION_TAG_SYSTEM } from '../fhir/systems.js';
import type { Queryable } from '../store/index.js';

export const DEFAULT_REQUIRED_FIELDS_FILE = fileURLToPath(new URL('../../mappings/upload/required-fields.json', import.meta.url));
const PAGE = 500;
const SOURCE_PREFIX = 'urn:county-hie:client:';

export type RequiredFields = ReadonlyMap<string, readonly string[]>;

export function loadRequiredFields(file: string = DEFAULT_REQUIRED_FIELDS_FILE): RequiredFields {
  const data = JSON.parse(readFileSync(file, 'utf8')) as { resources?: Record<string, unknown> };
  const out = new Map<string, string[]>();
  for (const [type, fields] of Object.entries(data.resources ?? {})) {
    if (!Array.isArray(fields) || fields.some((f) => typeof f !== 'string' || f === '')) throw new Error(`${file}: ${type} must list FHIRPath expressions`);
    out.set(type, fields as string[]);
  }
  if (out.size === 0) throw new Error(`${file}: no resource types declared`);
  return out;
}

/** `YYYY`, `YYYY-MM` or `YYYY-MM-DD` → [start, end) in the community's time (+08:00). */
export function periodRange(period: string): [string, string] {
  const m = /^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$/.exec(period);
  if (!m) throw new GatewayError('GW_ERR_BAD_REQUEST', `period must be YYYY, YYYY-MM or YYYY-MM-DD, not "${period.slice(0, 20)}"`, { expression: 'period' });
  const [y, mo, d] = [Number(m[1]), m[2] ? Number(m[2]) - 1 : 0, m[3] ? Number(m[3]) : 1];
  const start = new Date(Date.UTC(y, mo, d));
  if (start.getUTCMonth() !== mo || start.getUTCDate() !== d) throw new GatewayError('GW_ERR_BAD_REQUEST', `period "${period}" is not a date`, { expression: 'period' });
  const end = new Date(start);
  if (m[3]) end.setUTCDate(end.getUTCDate() + 1);
  else if (m[2]) end.setUTCMonth(end.getUTCMonth() + 1);
  else end.setUTCFullYear(end.getUTCFullYear() + 1);
  const iso = (x: Date) => `${x.toISOString().slice(0, 10)}T00:00:00+08:00`;
  return [iso(start), iso(end)];
}

export interface StatsRow {
  readonly resourceType: string;
  readonly feed: string;
  received: number;
  complete: number;
  fieldsPresent: number;
  fieldsExpected: number;
  /** Per required field, how many resources have it. */
  readonly perField: Map<string, number>;
}

/** The most months one request may ask for month by month. */
export const MAX_MONTHS = 24;

/** `YYYY-MM` of an instant, in the community's time (+08:00). */
function monthOf(instant: Date | string): string {
  return new Date(new Date(instant).getTime() + 8 * 3_600_000).toISOString().slice(0, 7);
}

/** The months from `start` to `end` (both `YYYY-MM`, inclusive), oldest first. */
export function monthsBetween(start: string, end: string): string[] {
  for (const [name, v] of [['start', start], ['end', end]]) {
    const month = /^\d{4}-(\d{2})$/.exec(v);
    if (!month || Number(month[1]) < 1 || Number(month[1]) > 12) throw new GatewayError('GW_ERR_BAD_REQUEST', `${name} must be a month YYYY-MM, not "${v.slice(0, 20)}"`, { expression: name });
  }
  const index = (m: string) => Number(m.slice(0, 4)) * 12 + Number(m.slice(5, 7)) - 1;
  const count = index(end) - index(start) + 1;
  if (count < 1) throw new GatewayError('GW_ERR_BAD_REQUEST', `end (${end}) is before start (${start})`, { expression: 'end' });
  if (count > MAX_MONTHS) throw new GatewayError('GW_ERR_BAD_REQUEST', `at most ${MAX_MONTHS} months at once, not ${count}`, { expression: 'end' });
  return Array.from({ length: count }, (_, i) => {
    const n = index(start) + i;
    return `${Math.floor(n / 12)}-${String((n % 12) + 1).padStart(2, '0')}`;
  });
}

/**
 * One pass over the institution's resources last updated in [start, end): the rows of each bucket
 * that `bucketOf` names from the resource's last update.
 */
async function scan(q: Queryable, required: RequiredFields, institution: string, [start, end]: [string, string], bucketOf: (lastUpdated: Date | string) => string): Promise<Map<string, StatsRow[]>> {
  const buckets = new Map<string, Map<string, StatsRow>>();
  for (const [type, fields] of required) {
    let after = 0;
    for (;;) {
      const { rows: page } = await q.query<{ rid: number; content: string; last_updated: Date | string }>(
        `SELECT r.rid, r.content, r.last_updated FROM resource r
           JOIN sp_token t ON t.rid = r.rid AND t.rtype = r.type AND t.code = '_tag' AND t.system = $2 AND t.value = $3
          WHERE r.type = $1 AND NOT r.deleted AND r.last_updated >= $4 AND r.last_updated < $5 AND r.rid > $6
          ORDER BY r.rid LIMIT ${PAGE}`,
        [type, INSTITUTION_TAG_SYSTEM, institution, start, end, after],
      );
      for (const { rid, content, last_updated } of page) {
        after = Number(rid);
        const resource = JSON.parse(content) as Resource;
        const source = resource.meta?.source ?? '';
        const feed = source.startsWith(SOURCE_PREFIX) ? source.slice(SOURCE_PREFIX.length) : source || 'unknown';
        const bucket = bucketOf(last_updated);
        let rows = buckets.get(bucket);
        if (!rows) buckets.set(bucket, (rows = new Map()));
        const key = `${type}|${feed}`;
        let row = rows.get(key);
        if (!row) {
          row = { resourceType: type, feed, received: 0, complete: 0, fieldsPresent: 0, fieldsExpected: 0, perField: new Map(fields.map((f) => [f, 0])) };
          rows.set(key, row);
        }
        row.received++;
        let present = 0;
        for (const f of fields) {
          if (evalFhirPath(f, resource).length > 0) {
            present++;
            row.perField.set(f, (row.perField.get(f) ?? 0) + 1);
          }
        }
        row.fieldsPresent += present;
        row.fieldsExpected += fields.length;
        if (present === fields.length) row.complete++;
      }
      if (page.length < PAGE) break;
    }
  }
  const sorted = new Map<string, StatsRow[]>();
  for (const [bucket, rows] of buckets) sorted.set(bucket, [...rows.values()].sort((a, b) => a.resourceType.localeCompare(b.resourceType) || a.feed.localeCompare(b.feed)));
  return sorted;
}

export async function uploadStats(q: Queryable, required: RequiredFields, institution: string, period: string): Promise<StatsRow[]> {
  const found = await scan(q, required, institution, periodRange(period), () => period);
  return found.get(period) ?? [];
}

/** The rows of each month from `start` to `end` (`YYYY-MM`, inclusive; months without uploads have none), in one pass. */
export async function uploadStatsByMonth(q: Queryable, required: RequiredFields, institution: string, start: string, end: string): Promise<{ period: string; rows: StatsRow[] }[]> {
  const months = monthsBetween(start, end);
  const found = await scan(q, required, institution, [periodRange(start)[0], periodRange(end)[1]], monthOf);
  return months.map((period) => ({ period, rows: found.get(period) ?? [] }));
}

const pct = (n: number, d: number) => (d === 0 ? 0 : Math.round((10000 * n) / d) / 100);

/** Totals over every feed: resources received, complete, and completeness (fields present / expected, %). */
function totalParameters(rows: readonly StatsRow[]): ParametersParameter[] {
  const sum = (pick: (r: StatsRow) => number) => rows.reduce((a, r) => a + pick(r), 0);
  return [
    { name: 'received', valueInteger: sum((r) => r.received) },
    { name: 'complete', valueInteger: sum((r) => r.complete) },
    { name: 'completeness', valueDecimal: pct(sum((r) => r.fieldsPresent), sum((r) => r.fieldsExpected)) },
  ];
}

function feedParameter(r: StatsRow): ParametersParameter {
  return {
    name: 'feed',
    part: [
      { name: 'resourceType', valueCode: r.resourceType },
      { name: 'feed', valueString: r.feed },
      { name: 'received', valueInteger: r.received },
      { name: 'complete', valueInteger: r.complete },
      { name: 'completeness', valueDecimal: pct(r.fieldsPresent, r.fieldsExpected) },
      ...[...r.perField].map(([field, n]): ParametersParameter => ({ name: 'field', part: [{ name: 'path', valueString: field }, { name: 'present', valueInteger: n }] })),
    ],
  };
}

export function statsParameters(institution: string, period: string, rows: readonly StatsRow[]): Parameters {
  return {
    resourceType: 'Parameters',
    parameter: [{ name: 'institution', valueString: institution }, { name: 'period', valueString: period }, ...totalParameters(rows), ...rows.map(feedParameter)],
  };
}

/** The month-by-month form: one `month` per month, each with its period, totals and feeds. */
export function monthlyStatsParameters(institution: string, months: readonly { period: string; rows: readonly StatsRow[] }[]): Parameters {
  return {
    resourceType: 'Parameters',
    parameter: [
      { name: 'institution', valueString: institution },
      ...months.map((m): ParametersParameter => ({ name: 'month', part: [{ name: 'period', valueString: m.period }, ...totalParameters(m.rows), ...m.rows.map(feedParameter)] })),
    ],
  };
}

export const UPLOAD_STATS_DEFINITION: OperationDefinition = {
  resourceType: 'OperationDefinition',
  id: 'upload-stats',
  url: `${FHIR_BASE}/OperationDefinition/upload-stats`,
  version: '0.1.0',
  name: 'UploadStats',
  title: 'Upload completeness per institution and feed',
  status: 'active',
  kind: 'operation',
  affectsState: false,
  code: 'upload-stats',
  system: true,
  type: false,
  instance: false,
  description: 'Per resource type and feed: resources received in the period (or in each month from start to end) and their completeness against the fields the regional platform requires.',
  parameter: [
    { name: 'institution', use: 'in', min: 0, max: '1', type: 'string', documentation: 'USCC; default the client’s own.' },
    { name: 'period', use: 'in', min: 0, max: '1', type: 'string', documentation: 'YYYY, YYYY-MM or YYYY-MM-DD (+08:00). Either period, or start and end.' },
    { name: 'start', use: 'in', min: 0, max: '1', type: 'string', documentation: `First month (YYYY-MM) of the month-by-month form; with end, at most ${MAX_MONTHS} months.` },
    { name: 'end', use: 'in', min: 0, max: '1', type: 'string', documentation: 'Last month (YYYY-MM, inclusive) of the month-by-month form.' },
    { name: 'received', use: 'out', min: 0, max: '1', type: 'integer', documentation: 'With period: resources received in the period, every feed.' },
    { name: 'complete', use: 'out', min: 0, max: '1', type: 'integer', documentation: 'With period: resources with every required field.' },
    { name: 'completeness', use: 'out', min: 0, max: '1', type: 'decimal', documentation: 'With period: required fields present / expected over every feed (%).' },
    { name: 'feed', use: 'out', min: 0, max: '*', documentation: 'With period: resourceType, feed, received, complete, completeness (%), field (path, present).' },
    { name: 'month', use: 'out', min: 0, max: '*', documentation: 'With start and end, one per month: period (YYYY-MM), received, complete, completeness, feed (as above).' },
  ],
};
