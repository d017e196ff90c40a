/**
 * FHIR operations of remote reading, mounted under /fhir:
 *   POST /ImagingStudy/{id}/$request-reading   Parameters(performer, category, note) → Parameters(serviceRequest, task)
 *   POST /Task/{id}/$claim                     → the Task, in-progress
 *   POST /Task/{id}/$complete                  Parameters(report: DiagnosticReport) → Parameters(report, task, serviceRequest)
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { DiagnosticReport, Parameters, ParametersParameter } from '@medplum/fhirtypes';
import { GatewayError } from '../errors.js';
import { restContext, FHIR_JSON } from '../fhir/routes.js';
import type { RequestContext } from '../fhir/context.js';
import { READING_CATEGORIES, type ReadingCategory, type ReadingResult, type ReadingService } from './service.js';

function params(body: unknown): ParametersParameter[] {
  if (body === undefined || body === null) return [];
  if (typeof body !== 'object' || (body as { resourceType?: string }).resourceType !== 'Parameters') {
    throw new GatewayError('GW_ERR_INVALID_RESOURCE', 'The body must be a Parameters resource', { expression: 'resourceType' });
  }
  return (body as Parameters).parameter ?? [];
}

function memberContext(req: FastifyRequest): RequestContext & { institution: string } {
  const ctx = restContext(req);
  if (!ctx.institution) throw new GatewayError('GW_ERR_FORBIDDEN', `Client "${ctx.clientId ?? 'unknown'}" acts for no member institution`);
  return { ...ctx, institution: ctx.institution };
}

function answer(r: ReadingResult): Parameters {
  return {
    resourceType: 'Parameters',
    parameter: [
      ...(r.report ? [{ name: 'report', resource: r.report }] : []),
      { name: 'serviceRequest', resource: r.serviceRequest },
      { name: 'task', resource: r.task },
    ],
  };
}

export function readingRoutes(service: ReadingService) {
  return async (app: FastifyInstance): Promise<void> => {
    const opts = { config: { interaction: 'operation' } };
    app.post<{ Params: { id: string } }>('/ImagingStudy/:id/$request-reading', opts, async (req, reply) => {
      const p = params(req.body);
      const get = (n: string) => p.find((x) => x.name === n);
      const performer = get('performer')?.valueString ?? get('performer')?.valueIdentifier?.value;
      if (!performer) throw new GatewayError('GW_ERR_BAD_REQUEST', 'performer (the reading centre’s USCC) is required', { expression: 'performer' });
      const category = (get('category')?.valueCode ?? 'imaging') as ReadingCategory;
      if (!READING_CATEGORIES.includes(category)) throw new GatewayError('GW_ERR_BAD_REQUEST', `category must be one of ${READING_CATEGORIES.join(', ')}`, { expression: 'category' });
      const note = get('note')?.valueString;
      const r = await service.request(req.params.id, { performer, category, ...(note ? { note } : {}) }, memberContext(req));
      return reply.code(201).header('content-type', FHIR_JSON).send(answer(r));
    });
    app.post<{ Params: { id: string } }>('/Task/:id/$claim', opts, async (req, reply) => {
      params(req.body);
      return reply.header('content-type', FHIR_JSON).send(await service.claim(req.params.id, memberContext(req)));
    });
    app.post<{ Params: { id: string } }>('/Task/:id/$complete', opts, async (req, reply) => {
      const report = params(req.body).find((x) => x.name === 'report')?.resource;
      if (!report) throw new GatewayError('GW_ERR_BAD_REQUEST', 'report (a DiagnosticReport) is required', { expression: 'report' });
      const r = await service.complete(req.params.id, report as DiagnosticReport, memberContext(req));
      return reply.header('content-type', FHIR_JSON).send(answer(r));
    });
  };
}
