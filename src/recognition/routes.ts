/**
 * REST surface of the recognition service: the FHIR operations $recognize (system and
 * Patient instance level), $recognition-decision and $recognition-stats, mounted in the /fhir
 * scope; and the qualification history at /recognition/qualifications (administrator writes).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Coding, Identifier, OperationOutcome, Parameters, ParametersParameter, ServiceRequest } from '@medplum/fhirtypes';
import { GatewayError } from '../errors.js';
import { restContext, FHIR_JSON } from '../fhir/routes.js';
import { USCC_SYSTEM } from '../fhir/systems.js';
import type { RequestContext } from '../fhir/context.js';
import type { Repository } from '../fhir/repository.js';
import { ITEM_SYSTEM, REASON_SYSTEM, REASON_TEXT, type OrderedItem, type RecognizeAnswer } from './recognize.js';
import { REPEAT_REASON_SYSTEM, REPEAT_REASONS, type RecognitionService, type RepeatReason } from './service.js';
import type { PatientKey } from './patients.js';
import type { StatsRow } from './store.js';

type Query = Record<string, string | string[] | undefined>;

/** The named inputs of an operation, from URL parameters and a Parameters body alike. */
class Inputs {
  private readonly params: ParametersParameter[];
  constructor(
    private readonly query: Query,
    body: unknown,
  ) {
    if (body !== undefined && body !== null && (typeof body !== 'object' || (body as { resourceType?: string }).resourceType !== 'Parameters')) {
      throw new GatewayError('GW_ERR_INVALID_RESOURCE', 'The body must be a Parameters resource', { expression: 'resourceType' });
    }
    this.params = (body as Parameters | undefined)?.parameter ?? [];
  }

  private strings(name: string): string[] {
    const q = this.query[name];
    return q === undefined ? [] : Array.isArray(q) ? q : [q];
  }

  all(name: string): ParametersParameter[] {
    return this.params.filter((p) => p.name === name);
  }

  string(name: string): string | undefined {
    const p = this.all(name)[0];
    return this.strings(name)[0] ?? p?.valueString ?? p?.valueCode ?? p?.valueDate ?? p?.valueCoding?.code ?? p?.valueIdentifier?.value;
  }

  references(name: string): string[] {
    return [...this.strings(name), ...this.all(name).flatMap((p) => (p.valueReference?.reference ? [p.valueReference.reference] : []))];
  }

  codings(name: string): Coding[] {
    const fromQuery = this.strings(name).flatMap((s) => s.split(',')).map((t): Coding => {
      const i = t.indexOf('|');
      if (i <= 0) throw new GatewayError('GW_ERR_BAD_REQUEST', `${name} must be system|code, not "${t}"`, { expression: name });
      return { system: t.slice(0, i), code: t.slice(i + 1) };
    });
    const fromBody = this.all(name).flatMap((p) => (p.valueCoding ? [p.valueCoding] : (p.valueCodeableConcept?.coding ?? [])));
    return [...fromQuery, ...fromBody];
  }

  identifier(name: string): string | undefined {
    const q = this.strings(name)[0];
    if (q) return q;
    const v: Identifier | undefined = this.all(name)[0]?.valueIdentifier;
    return v?.value ? `${v.system ?? ''}|${v.value}` : undefined;
  }
}

function coding(code: string, system: string, display?: string): Coding {
  return { system, code, ...(display ? { display } : {}) };
}

export function answerParameters(answer: RecognizeAnswer): Parameters {
  const parameter: ParametersParameter[] = [];
  if (answer.version) parameter.push({ name: 'catalogueVersion', valueString: answer.version.version });
  parameter.push({ name: 'date', valueDate: answer.orderDate });
  for (const a of answer.items) {
    const part: ParametersParameter[] = a.order.codings.map((c) => ({ name: 'order', valueCoding: c }));
    if (a.order.serviceRequest) part.push({ name: 'serviceRequest', valueReference: { reference: a.order.serviceRequest } });
    if (a.item) {
      part.push({ name: 'catalogueItem', valueCoding: coding(a.item.id, ITEM_SYSTEM, a.item.name.zh) });
      part.push({ name: 'validityDays', valueInteger: a.item.validityDays });
    }
    part.push({ name: 'recognised', valueBoolean: a.recognised });
    part.push({ name: 'reason', valueCoding: coding(a.reason, REASON_SYSTEM, REASON_TEXT[a.reason]) });
    for (const r of a.results) {
      part.push({
        name: 'result',
        part: [
          { name: 'reference', valueReference: { reference: r.reference } },
          ...(r.institution ? [{ name: 'institution', valueIdentifier: { system: USCC_SYSTEM, value: r.institution } }] : []),
          { name: 'date', valueDate: r.date },
          { name: 'validUntil', valueDate: r.validUntil },
          { name: 'recognisable', valueBoolean: r.reason === 'recognised' },
          { name: 'reason', valueCoding: coding(r.reason, REASON_SYSTEM, REASON_TEXT[r.reason]) },
          ...(r.value ? [{ name: 'value', valueQuantity: r.value }] : []),
        ],
      });
    }
    parameter.push({ name: 'item', part });
  }
  return { resourceType: 'Parameters', parameter };
}

function statsParameters(rows: readonly StatsRow[]): Parameters {
  return {
    resourceType: 'Parameters',
    parameter: rows.map((r) => ({
      name: 'row',
      part: [
        { name: 'institution', valueIdentifier: { system: USCC_SYSTEM, value: r.institution } },
        { name: 'item', valueCoding: coding(r.item, ITEM_SYSTEM) },
        { name: 'offered', valueInteger: r.offered },
        { name: 'accepted', valueInteger: r.accepted },
        { name: 'repeated', valueInteger: r.repeated },
        ...Object.entries(r.repeatedByReason).map(([reason, n]) => ({
          name: 'repeatedReason',
          part: [
            { name: 'reason', valueCoding: coding(reason, REPEAT_REASON_SYSTEM) },
            { name: 'count', valueInteger: n },
          ],
        })),
        { name: 'saved', valueMoney: { value: Math.round(r.saved * 100) / 100, currency: 'CNY' } },
      ],
    })),
  };
}

/** The patient and the orders, from the inputs (a ServiceRequest brings both). */
async function readRecognizeInputs(inputs: Inputs, repository: Repository, ctx: RequestContext, pathPatient?: string): Promise<{ patient: PatientKey; orders: OrderedItem[] }> {
  const orders: OrderedItem[] = [];
  const subjects = new Set<string>();
  const requests: { ref?: string; resource: ServiceRequest }[] = [];
  for (const p of inputs.all('serviceRequest')) if (p.resource?.resourceType === 'ServiceRequest') requests.push({ ...(p.resource.id ? { ref: `ServiceRequest/${p.resource.id}` } : {}), resource: p.resource });
  for (const ref of inputs.references('serviceRequest')) {
    const [type, id] = ref.split('/');
    if (type !== 'ServiceRequest' || !id) throw new GatewayError('GW_ERR_BAD_REQUEST', `serviceRequest must reference a ServiceRequest, not "${ref}"`, { expression: 'serviceRequest' });
    const row = await repository.read(type, id, ctx);
    requests.push({ ref, resource: JSON.parse(row.content as string) as ServiceRequest });
  }
  for (const { ref, resource } of requests) {
    const codings = resource.code?.coding ?? [];
    if (codings.length === 0) throw new GatewayError('GW_ERR_BAD_REQUEST', 'A ServiceRequest without code.coding names no item', { expression: 'serviceRequest.code' });
    orders.push({ codings, ...(ref ? { serviceRequest: ref } : {}) });
    if (resource.subject?.reference) subjects.add(resource.subject.reference);
  }
  for (const c of inputs.codings('code')) orders.push({ codings: [c] });
  const named = pathPatient ?? inputs.references('patient')[0];
  const identifier = inputs.identifier('identifier');
  let patient: PatientKey | undefined = named ? { reference: named } : identifier ? { identifier } : undefined;
  if (!patient && subjects.size === 1) patient = { reference: [...subjects][0] };
  if (!patient) throw new GatewayError('GW_ERR_BAD_REQUEST', 'Name the patient: patient (Patient/id), identifier (system|value), or a ServiceRequest with its subject', { expression: 'patient' });
  return { patient, orders };
}

function outcome(text: string): OperationOutcome {
  return { resourceType: 'OperationOutcome', issue: [{ severity: 'information', code: 'informational', diagnostics: text }] };
}

const send = (reply: FastifyReply, body: unknown) => reply.code(200).header('content-type', FHIR_JSON).send(body);

/** FHIR operations; registered inside the /fhir scope (its JSON parsers and error handling). */
export function recognitionOperationRoutes(service: RecognitionService, repository: Repository) {
  return async (app: FastifyInstance): Promise<void> => {
    const run = async (req: FastifyRequest, pathPatient?: string) => {
      const ctx = restContext(req);
      const inputs = new Inputs(req.query as Query, req.method === 'POST' ? req.body : undefined);
      const { patient, orders } = await readRecognizeInputs(inputs, repository, ctx, pathPatient);
      const date = inputs.string('date');
      const institution = inputs.string('institution');
      const answer = await service.recognize({ patient, orders, ...(date ? { orderDate: date } : {}), ...(institution ? { institution } : {}) }, ctx);
      return answerParameters(answer);
    };
    const opts = { config: { interaction: 'operation' } };
    app.get('/$recognize', opts, async (req, reply) => send(reply, await run(req)));
    app.post('/$recognize', opts, async (req, reply) => send(reply, await run(req)));
    app.get<{ Params: { id: string } }>('/Patient/:id/$recognize', opts, async (req, reply) => send(reply, await run(req, `Patient/${req.params.id}`)));
    app.post<{ Params: { id: string } }>('/Patient/:id/$recognize', opts, async (req, reply) => send(reply, await run(req, `Patient/${req.params.id}`)));

    app.post('/$recognition-decision', opts, async (req, reply) => {
      const inputs = new Inputs(req.query as Query, req.body);
      const named = inputs.references('patient')[0];
      const identifier = inputs.identifier('identifier');
      if (!named && !identifier) throw new GatewayError('GW_ERR_BAD_REQUEST', 'Name the patient: patient or identifier', { expression: 'patient' });
      const decision = inputs.string('decision');
      if (decision !== 'accepted' && decision !== 'repeated') throw new GatewayError('GW_ERR_BAD_REQUEST', 'decision must be accepted or repeated', { expression: 'decision' });
      const reason = inputs.string('reason');
      if (reason !== undefined && !(REPEAT_REASONS as readonly string[]).includes(reason)) {
        throw new GatewayError('GW_ERR_BAD_REQUEST', `reason must be one of ${REPEAT_REASONS.join(', ')}`, { expression: 'reason' });
      }
      const item = inputs.string('item');
      if (!item) throw new GatewayError('GW_ERR_BAD_REQUEST', 'item (the catalogue item id) is required', { expression: 'item' });
      const date = inputs.string('date');
      const institution = inputs.string('institution');
      const done = await service.decide(
        {
          patient: named ? { reference: named } : { identifier: identifier as string },
          item,
          decision,
          ...(reason ? { reason: reason as RepeatReason } : {}),
          results: inputs.references('result'),
          ...(date ? { orderDate: date } : {}),
          ...(institution ? { institution } : {}),
        },
        restContext(req),
      );
      const text = decision === 'accepted' ? `Recognition of ${item} recorded (${done.tagged.length} result(s) marked)` : `Repeat of ${item} recorded (${reason ?? ''})`;
      return send(reply, { resourceType: 'Parameters', parameter: [{ name: 'return', resource: outcome(`${text}; catalogue ${done.catalogueVersion}`) }, { name: 'id', valueString: String(done.id) }] });
    });

    const stats = async (req: FastifyRequest) => {
      const inputs = new Inputs(req.query as Query, req.method === 'POST' ? req.body : undefined);
      const [institution, item, from, to] = [inputs.string('institution'), inputs.string('item'), inputs.string('start'), inputs.string('end')];
      return statsParameters(await service.stats({ ...(institution ? { institution } : {}), ...(item ? { item } : {}), ...(from ? { from } : {}), ...(to ? { to } : {}) }));
    };
    app.get('/$recognition-stats', opts, async (req, reply) => send(reply, await stats(req)));
    app.post('/$recognition-stats', opts, async (req, reply) => send(reply, await stats(req)));
  };
}

interface QualificationBody {
  institution: string;
  category: 'lab' | 'imaging' | 'ecg';
  status: 'qualified' | 'suspended';
  effectiveFrom: string;
  reason?: string;
}

const QUALIFICATION_SCHEMA = {
  type: 'object',
  required: ['institution', 'category', 'status', 'effectiveFrom'],
  additionalProperties: false,
  properties: {
    institution: { type: 'string', minLength: 1, maxLength: 64 },
    category: { enum: ['lab', 'imaging', 'ecg'] },
    status: { enum: ['qualified', 'suspended'] },
    effectiveFrom: { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}$' },
    reason: { type: 'string', maxLength: 500 },
  },
} as const;

/** The qualification history; writes by the administrator only (role admin, no institution). */
export function qualificationRoutes(service: RecognitionService) {
  return async (app: FastifyInstance): Promise<void> => {
    app.setSchemaErrorFormatter((errors) => new GatewayError('GW_ERR_BAD_REQUEST', errors.map((e) => `${e.instancePath || 'body'} ${e.message ?? 'invalid'}`).join('; '), { expression: 'body' }));
    app.get<{ Querystring: { institution?: string; category?: string } }>('/qualifications', { config: { interaction: 'recognition-qualifications' } }, async (req) => ({
      qualifications: await service.qualifications({ ...(req.query.institution ? { institution: req.query.institution } : {}), ...(req.query.category ? { category: req.query.category } : {}) }),
    }));
    app.post<{ Body: QualificationBody }>('/qualifications', { schema: { body: QUALIFICATION_SCHEMA }, config: { interaction: 'recognition-qualify' } }, async (req, reply) => {
      if (req.auth?.role !== 'admin' || req.auth.institution) {
        const message = `Client "${req.auth?.clientId ?? 'unknown'}" may not change qualifications (administrator only)`;
        await service.refused(restContext(req), 'recognition-qualification', message);
        throw new GatewayError('GW_ERR_FORBIDDEN', message);
      }
      const change = await service.qualify(req.body, restContext(req));
      return reply.code(201).send(change);
    });
  };
}

