/**
 * $referral-stats, mounted in the /fhir scope: GET with URL parameters or POST with Parameters.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { OperationDefinition, Parameters, ParametersParameter } from '@medplum/fhirtypes';
import { GatewayError } from '../errors.js';
import { FHIR_JSON, restContext } from '../fhir/routes.js';
import { FHIR_BASE } from '../fhir/systems.js';
import { assertCan, forbidden } from '../auth/policy.js';
import type { Db } from '../store/index.js';
import { referralStats, type ReferralStats } from './stats.js';

export const REFERRAL_STATS_DEFINITION: OperationDefinition = {
  resourceType: 'OperationDefinition',
  id: 'referral-stats',
  url: `${FHIR_BASE}/OperationDefinition/referral-stats`,
  version: '0.1.0',
  name: 'ReferralStats',
  title: 'Two-way referral figures (双向转诊统计)',
  status: 'active',
  kind: 'operation',
  description:
    'Per institution and period (the referral Task authoredOn): referrals sent up, down and out of the county, patients returned after ' +
    'out-of-county treatment, referrals received, accepted and rejected, the acceptance rate, the median hours to accept and the open referrals past the deadline.',
  affectsState: false,
  code: 'referral-stats',
  system: true,
  type: false,
  instance: false,
  parameter: [
    { name: 'institution', use: 'in', min: 0, max: '1', type: 'string', documentation: 'USCC of the institution; default the client’s own; none for an administrator: the whole community.' },
    { name: 'start', use: 'in', min: 0, max: '1', type: 'date', documentation: 'First day of the period.' },
    { name: 'end', use: 'in', min: 0, max: '1', type: 'date', documentation: 'Last day of the period.' },
    { name: 'deadlineHours', use: 'in', min: 0, max: '1', type: 'integer', documentation: 'An open referral older than this is overdue; default from the level rules (deadlineHours).' },
    ...['up', 'down', 'outOfCounty', 'returnedAfterOutOfCounty', 'received', 'accepted', 'rejected', 'overdueOpen'].map((name) => ({ name, use: 'out' as const, min: 1, max: '1', type: 'integer' })),
    { name: 'acceptanceRate', use: 'out', min: 0, max: '1', type: 'decimal', documentation: 'accepted ÷ (accepted + rejected).' },
    { name: 'medianHoursToAccept', use: 'out', min: 0, max: '1', type: 'decimal' },
  ],
};

const DATE = /^\d{4}-\d{2}-\d{2}$/;
const NAMES = new Set(['institution', 'start', 'end', 'deadlineHours', '_format']);

/** The named inputs from URL parameters or a Parameters body. */
function inputs(req: FastifyRequest): Map<string, string> {
  const out = new Map<string, string>();
  if (req.method === 'POST') {
    const body = req.body as Parameters | undefined;
    if (body?.resourceType !== 'Parameters') throw new GatewayError('GW_ERR_INVALID_RESOURCE', 'The body must be a Parameters resource', { expression: 'resourceType' });
    for (const p of body.parameter ?? []) {
      const v = p.valueString ?? p.valueDate ?? p.valueCode ?? (p.valueInteger !== undefined ? String(p.valueInteger) : undefined);
      if (v !== undefined) out.set(p.name as string, v);
    }
  } else {
    for (const [k, v] of Object.entries(req.query as Record<string, string | string[]>)) out.set(k, Array.isArray(v) ? (v[0] as string) : v);
  }
  for (const k of out.keys()) if (!NAMES.has(k)) throw new GatewayError('GW_ERR_BAD_REQUEST', `Unknown parameter ${k} for $referral-stats`, { expression: k });
  return out;
}

function toParameters(s: ReferralStats): Parameters {
  const parameter: ParametersParameter[] = (['up', 'down', 'outOfCounty', 'returnedAfterOutOfCounty', 'received', 'accepted', 'rejected', 'overdueOpen'] as const).map((name) => ({ name, valueInteger: s[name] }));
  if (s.acceptanceRate !== undefined) parameter.push({ name: 'acceptanceRate', valueDecimal: Math.round(s.acceptanceRate * 10000) / 10000 });
  if (s.medianHoursToAccept !== undefined) parameter.push({ name: 'medianHoursToAccept', valueDecimal: Math.round(s.medianHoursToAccept * 100) / 100 });
  return { resourceType: 'Parameters', parameter };
}

export function referralRoutes(db: Db, defaults: { deadlineHours: number; now?: () => Date }): (app: FastifyInstance) => Promise<void> {
  return async (app) => {
    const run = async (req: FastifyRequest) => {
      const ctx = restContext(req);
      assertCan(ctx, 'Task', 's');
      const input = inputs(req);
      const institution = input.get('institution') ?? ctx.institution;
      if (ctx.scopes && ctx.institution && institution !== ctx.institution) throw forbidden(`Client "${ctx.clientId}" may see the referral figures of its own institution only`, 'institution');
      for (const k of ['start', 'end']) {
        const v = input.get(k);
        if (v !== undefined && !DATE.test(v)) throw new GatewayError('GW_ERR_BAD_REQUEST', `${k} must be a date (YYYY-MM-DD)`, { expression: k });
      }
      const raw = input.get('deadlineHours');
      const deadlineHours = raw === undefined ? defaults.deadlineHours : Number(raw);
      if (!Number.isInteger(deadlineHours) || deadlineHours < 1) throw new GatewayError('GW_ERR_BAD_REQUEST', 'deadlineHours must be a positive integer', { expression: 'deadlineHours' });
      const stats = await referralStats(db, { institution, start: input.get('start'), end: input.get('end'), deadlineHours, now: defaults.now?.() ?? new Date() });
      return toParameters(stats);
    };
    const opts = { config: { interaction: 'operation' } };
    app.get('/$referral-stats', opts, async (req, reply) => reply.code(200).header('content-type', FHIR_JSON).send(await run(req)));
    app.post('/$referral-stats', opts, async (req, reply) => reply.code(200).header('content-type', FHIR_JSON).send(await run(req)));
  };
}
