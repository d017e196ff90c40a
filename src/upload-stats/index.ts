/**
 * Upload completeness: GET|POST /fhir/$upload-stats?institution=&period= → Parameters, or
 * ?institution=&start=YYYY-MM&end=YYYY-MM → Parameters with one `month` per month.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { GatewayError } from '../errors.js';
import { FHIR_JSON, restContext } from '../fhir/routes.js';
import { recordAccess } from '../audit/index.js';
import type { Db } from '../store/index.js';
import { monthlyStatsParameters, statsParameters, uploadStats, uploadStatsByMonth, type RequiredFields } from './stats.js';

export { loadRequiredFields, uploadStats, uploadStatsByMonth, monthsBetween, MAX_MONTHS, periodRange, statsParameters, UPLOAD_STATS_DEFINITION, DEFAULT_REQUIRED_FIELDS_FILE, type RequiredFields, type StatsRow } from './stats.js';

/** Roles that see every institution's figures; a member institution sees its own. */
const OVERSEERS = new Set(['admin', 'platform', 'auditor']);

export function uploadStatsRoutes(db: Db, required: RequiredFields) {
  return async (app: FastifyInstance): Promise<void> => {
    const run = async (req: FastifyRequest) => {
      const ctx = restContext(req);
      const q = { ...(req.query as Record<string, unknown>) };
      const body = req.body as { resourceType?: string; parameter?: { name: string; valueString?: string }[] } | undefined;
      for (const p of body?.resourceType === 'Parameters' ? (body.parameter ?? []) : []) if (p.valueString !== undefined) q[p.name] ??= p.valueString;
      const text = (name: string) => (typeof q[name] === 'string' && q[name] !== '' ? (q[name] as string) : undefined);
      const [period, start, end] = [text('period'), text('start'), text('end')];
      if (period !== undefined && (start !== undefined || end !== undefined)) {
        throw new GatewayError('GW_ERR_BAD_REQUEST', 'Ask for a period, or for the months from start to end, not both', { expression: 'period' });
      }
      if (period === undefined && (start === undefined || end === undefined)) {
        throw new GatewayError('GW_ERR_BAD_REQUEST', 'period (YYYY, YYYY-MM or YYYY-MM-DD), or start and end (YYYY-MM), is required', { expression: start === undefined ? (end === undefined ? 'period' : 'start') : 'end' });
      }
      const institution = text('institution') ?? ctx.institution;
      if (!institution) throw new GatewayError('GW_ERR_BAD_REQUEST', 'institution (USCC) is required', { expression: 'institution' });
      if (institution !== ctx.institution && !OVERSEERS.has(ctx.role ?? '')) {
        throw new GatewayError('GW_ERR_FORBIDDEN', `Client "${ctx.clientId ?? 'unknown'}" may see the upload figures of its own institution only`, { expression: 'institution' });
      }
      const asked = period !== undefined ? `period=${period}` : `start=${start}&end=${end}`;
      const answer =
        period !== undefined
          ? statsParameters(institution, period, await uploadStats(db, required, institution, period))
          : monthlyStatsParameters(institution, await uploadStatsByMonth(db, required, institution, start as string, end as string));
      await recordAccess(db, ctx, [{ interaction: 'operation', operation: '$upload-stats', outcome: '0', resources: [], patients: [], query: `institution=${institution}&${asked}` }]);
      return answer;
    };
    app.get('/$upload-stats', { config: { interaction: 'operation' } }, async (req, reply) => reply.header('content-type', FHIR_JSON).send(await run(req)));
    app.post('/$upload-stats', { config: { interaction: 'operation' } }, async (req, reply) => reply.header('content-type', FHIR_JSON).send(await run(req)));
  };
}
