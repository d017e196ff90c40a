/**
 * CDS Hooks 2.0 service for order-time recognition advice: `GET /cds-services` (discovery) and
 * `POST /cds-services/{id}` for the `order-select` and `order-sign` hooks. Each draft
 * ServiceRequest that a recent recognisable result answers gets an info card naming the result,
 * with a suggestion to delete the draft order and a link to the result; the card comes back in the
 * same request. The caller authenticates with the gateway's bearer token, as for the FHIR API.
 */
import type { FastifyInstance } from 'fastify';
import type { Bundle, Quantity, ServiceRequest } from '@medplum/fhirtypes';
import { randomUUID } from 'node:crypto';
import { GatewayError } from '../errors.js';
import { restContext } from '../fhir/routes.js';
import type { Queryable } from '../store/index.js';
import { institutionsByUscc, type Candidate, type ItemAnswer } from './recognize.js';
import type { RecognitionService } from './service.js';

export const CDS_SERVICES = [
  {
    hook: 'order-select',
    id: 'recognition-order-select',
    title: '检查检验结果互认 Mutual recognition of test results',
    description: 'When an order is selected, tells whether a recent result from a qualified member institution can be recognised instead of repeating the test.',
    prefetch: { patient: 'Patient/{{context.patientId}}' },
  },
  {
    hook: 'order-sign',
    id: 'recognition-order-sign',
    title: '检查检验结果互认 Mutual recognition of test results',
    description: 'Before orders are signed, lists the ordered items that a recent recognisable result already answers.',
    prefetch: { patient: 'Patient/{{context.patientId}}' },
  },
] as const;

interface HookRequest {
  hook: string;
  hookInstance: string;
  fhirServer?: string;
  context: { userId: string; patientId: string; encounterId?: string; selections?: string[]; draftOrders: Bundle };
  prefetch?: Record<string, unknown>;
}

const REQUEST_SCHEMA = {
  type: 'object',
  required: ['hook', 'hookInstance', 'context'],
  properties: {
    hook: { type: 'string' },
    hookInstance: { type: 'string', minLength: 1 },
    fhirServer: { type: 'string' },
    fhirAuthorization: { type: 'object' },
    prefetch: { type: 'object' },
    context: {
      type: 'object',
      required: ['userId', 'patientId', 'draftOrders'],
      properties: {
        userId: { type: 'string' },
        patientId: { type: 'string', pattern: '^[A-Za-z0-9\\-.]{1,64}$' },
        encounterId: { type: 'string' },
        selections: { type: 'array', items: { type: 'string' } },
        draftOrders: { type: 'object', required: ['resourceType'], properties: { resourceType: { const: 'Bundle' }, entry: { type: 'array' } } },
      },
    },
  },
} as const;

function formatValue(q: Quantity | undefined): string {
  if (!q || q.value === undefined) return '';
  return `, ${q.value}${q.unit ?? q.code ? ` ${q.unit ?? q.code}` : ''}`;
}

function daysBetween(from: string, to: string): number {
  return Math.round((Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / 86_400_000);
}

async function institutionNames(db: Queryable, usccs: readonly string[]): Promise<Map<string, string>> {
  const names = new Map<string, string>();
  for (const [uscc, i] of await institutionsByUscc(db, usccs)) if (i.name) names.set(uscc, i.name);
  return names;
}

function card(a: ItemAnswer, best: Candidate, orderDate: string, names: Map<string, string>, baseUrl: string) {
  const item = a.item as NonNullable<ItemAnswer['item']>;
  const where = best.institution ? (names.get(best.institution) ?? best.institution) : 'another institution';
  const ago = daysBetween(best.date, orderDate);
  const when = ago === 0 ? 'today' : `${ago} day${ago === 1 ? '' : 's'} ago`;
  const summary = `${item.name.en} from ${where}, ${when}${formatValue(best.value)}: recognised; avoid repeating`.slice(0, 140);
  const others = a.results.filter((r) => r.reason === 'recognised');
  const detail = [
    `**${item.name.zh} / ${item.name.en}** can be recognised (检查检验结果互认) until ${best.validUntil} (valid ${item.validityDays} days).`,
    '',
    ...others.map((r) => `- ${r.date} · ${r.institution ? (names.get(r.institution) ?? r.institution) : ''}${formatValue(r.value)} · ${r.reference}`),
    '',
    'Repeat it only for a clinical reason, and record the decision with $recognition-decision.',
  ].join('\n');
  const suggestions = a.order.serviceRequest
    ? [
        {
          label: 'Cancel the draft order and use the recognised result',
          uuid: randomUUID(),
          isRecommended: true,
          actions: [{ type: 'delete', description: `Remove the draft order for ${item.name.en}`, resourceId: [a.order.serviceRequest] }],
        },
      ]
    : [];
  return {
    uuid: randomUUID(),
    summary,
    detail,
    indicator: 'info',
    source: { label: '县域医共体检查检验结果互认 County mutual recognition', topic: { system: 'https://fhir.county-hie.cn/CodeSystem/recognition-item', code: item.id, display: item.name.zh } },
    ...(suggestions.length ? { suggestions, selectionBehavior: 'at-most-one' } : {}),
    links: [{ label: `Open the ${best.resourceType}`, url: `${baseUrl}/fhir/${best.reference}`, type: 'absolute' }],
  };
}

export function cdsHooksRoutes(service: RecognitionService, db: Queryable, baseUrl: string) {
  return async (app: FastifyInstance): Promise<void> => {
    app.setSchemaErrorFormatter((errors) => new GatewayError('GW_ERR_BAD_REQUEST', errors.map((e) => `${e.instancePath || 'request'} ${e.message ?? 'invalid'}`).join('; '), { expression: 'body' }));
    app.get('/', { config: { interaction: 'cds-discovery' } }, async () => ({ services: CDS_SERVICES }));
    app.post<{ Params: { id: string }; Body: HookRequest }>('/:id', { schema: { body: REQUEST_SCHEMA }, config: { interaction: 'cds-hook' } }, async (req) => {
      const def = CDS_SERVICES.find((s) => s.id === req.params.id);
      if (!def) throw new GatewayError('GW_ERR_NOT_FOUND', `No CDS service "${req.params.id}"`);
      const body = req.body;
      if (body.hook !== def.hook) throw new GatewayError('GW_ERR_BAD_REQUEST', `Service ${def.id} answers the ${def.hook} hook, not ${body.hook}`, { expression: 'hook' });
      const selections = body.context.selections;
      if (def.hook === 'order-select' && (!selections || selections.length === 0)) {
        throw new GatewayError('GW_ERR_BAD_REQUEST', 'order-select needs context.selections', { expression: 'context.selections' });
      }
      const drafts = (body.context.draftOrders.entry ?? [])
        .map((e) => e.resource)
        .filter((r): r is ServiceRequest => r?.resourceType === 'ServiceRequest' && (r.code?.coding?.length ?? 0) > 0)
        .filter((r) => def.hook !== 'order-select' || (selections ?? []).includes(`ServiceRequest/${r.id ?? ''}`));
      if (drafts.length === 0) return { cards: [] };
      const answer = await service.recognize(
        { patient: { reference: `Patient/${body.context.patientId}` }, orders: drafts.map((d) => ({ codings: d.code?.coding ?? [], ...(d.id ? { serviceRequest: `ServiceRequest/${d.id}` } : {}) })) },
        restContext(req),
      );
      const recognised = answer.items.filter((a) => a.recognised && a.item);
      const names = await institutionNames(db, [...new Set(recognised.flatMap((a) => a.results.map((r) => r.institution).filter((i): i is string => !!i)))]);
      return { cards: recognised.map((a) => card(a, a.results[0], answer.orderDate, names, baseUrl)) };
    });
  };
}
