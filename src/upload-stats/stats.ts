/**
 * Upload completeness ($upload-stats): for one institution and period, per resource type and feed
 * (the client that wrote it), how many resources were received and how complete they are against
 * the fields the regional platform requires (mappings/upload/required-fields.json, FHIRPath).
 * Completeness = required fields present / required fields expected; complete = resources with
 * every required field. Reads the current versions tagged with the institution and last updated in
 * the period, through the tag index, in pages.
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

export async function uploadStats(q: Queryable, required: RequiredFields, institution: string, period: string): Promise<StatsRow[]> {
  const [start, end] = periodRange(period);
  const rows = new Map<string, StatsRow>();
  for (const [type, fields] of required) {
    let after = 0;
    for (;;) {
      const { rows: page } = await q.query<{ rid: number; content: string }>(
        `SELECT r.rid, r.content FROM resource r
           JOIN sp_token t ON t.rid = r.rid AND t.rtype = r.type AND t.code = '_tag' AND t.system = $2 AND t.value = $3
          WHERE r.type = $1 AND NOT r.deleted AND r.last_updated >= $4 AND r.last_updated < $5 AND r.rid > $6
          ORDER BY r.rid LIMIT ${PAGE}`,
        [type, INSTITUTION_TAG_SYSTEM, institution, start, end, after],
      );
      for (const { rid, content } of page) {
        after = Number(rid);
        const resource = JSON.parse(content) as Resource;
        const source = resource.meta?.source ?? '';
        const feed = source.startsWith(SOURCE_PREFIX) ? source.slice(SOURCE_PREFIX.length) : source || 'unknown';
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
  return [...rows.values()].sort((a, b) => a.resourceType.localeCompare(b.resourceType) || a.feed.localeCompare(b.feed));
}

const pct = (n: number, d: number) => (d === 0 ? 0 : Math.round((10000 * n) / d) / 100);

export function statsParameters(institution: string, period: string, rows: readonly StatsRow[]): Parameters {
  return {
    resourceType: 'Parameters',
    parameter: [
      { name: 'institution', valueString: institution },
      { name: 'period', valueString: period },
      ...rows.map(
        (r): ParametersParameter => ({
          name: 'feed',
          part: [
            { name: 'resourceType', valueCode: r.resourceType },
            { name: 'feed', valueString: r.feed },
            { name: 'received', valueInteger: r.received },
            { name: 'complete', valueInteger: r.complete },
            { name: 'completeness', valueDecimal: pct(r.fieldsPresent, r.fieldsExpected) },
            ...[...r.perField].map(([field, n]): ParametersParameter => ({ name: 'field', part: [{ name: 'path', valueString: field }, { name: 'present', valueInteger: n }] })),
          ],
        }),
      ),
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
  description: 'Per resource type and feed: resources received in the period and their completeness against the fields the regional platform requires.',
  parameter: [
    { name: 'institution', use: 'in', min: 0, max: '1', type: 'string', documentation: 'USCC; default the client’s own.' },
    { name: 'period', use: 'in', min: 1, max: '1', type: 'string', documentation: 'YYYY, YYYY-MM or YYYY-MM-DD (+08:00).' },
    { name: 'feed', use: 'out', min: 0, max: '*', documentation: 'resourceType, feed, received, complete, completeness (%), field (path, present).' },
  ],
};
