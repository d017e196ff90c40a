/**
 * Identity corrections:
 * - `Patient/$merge` (FHIR R5 Patient-merge parameters): the source Patient is retired with a
 *   replaced-by link to the target; the write path's MPI step then moves every resource that
 *   referred to the source (see src/mpi/merge.ts). `preview` only counts.
 * - `Patient/$unmerge`: gives each moved resource back to the source, restores both Patients.
 * - `Person/{id}/$unlink` and `Person/{id}/$link`: undo a wrong link, or make one from the review
 *   queue, by editing the golden record only.
 * Each is audited (subtype `$merge`, `$unmerge`, `mpi-unlink`, `mpi-link`).
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Identifier, OperationDefinition, OperationOutcome, Parameters, Patient, PersonLink } from '@medplum/fhirtypes';
import { GatewayError } from '../../errors.js';
import { FHIR_BASE } from '../systems.js';
import { restContext, FHIR_JSON } from '../routes.js';
import { assertCan, institutionOf, writableInstitutions } from '../../auth/policy.js';
import { recordAccess } from '../../audit/index.js';
import type { Repository } from '../repository.js';
import type { RequestContext } from '../context.js';
import { countReferring, personWrites, personsOf, readPerson, unmerge, type WriteFn } from '../../mpi/index.js';

const common = { resourceType: 'OperationDefinition', version: '0.1.0', status: 'active', kind: 'operation', system: false, type: true, instance: false } as const;

export const MERGE_DEFINITION: OperationDefinition = {
  ...common,
  id: 'Patient-merge',
  url: `${FHIR_BASE}/OperationDefinition/Patient-merge`,
  name: 'Merge',
  title: 'Merge a duplicate Patient into another',
  description: 'FHIR R5 Patient $merge: every resource that refers to the source is re-pointed to the target (new versions, history kept); the source is retired with a replaced-by link. Undo with $unmerge.',
  affectsState: true,
  code: 'merge',
  base: 'http://hl7.org/fhir/OperationDefinition/Patient-merge',
  resource: ['Patient'],
  parameter: [
    { name: 'source-patient', use: 'in', min: 0, max: '1', type: 'Reference', documentation: 'The duplicate, to be retired.' },
    { name: 'source-patient-identifier', use: 'in', min: 0, max: '*', type: 'Identifier', documentation: 'The duplicate, by identifier.' },
    { name: 'target-patient', use: 'in', min: 0, max: '1', type: 'Reference', documentation: 'The surviving Patient.' },
    { name: 'target-patient-identifier', use: 'in', min: 0, max: '*', type: 'Identifier', documentation: 'The surviving Patient, by identifier.' },
    { name: 'result-patient', use: 'in', min: 0, max: '1', type: 'Patient', documentation: 'The target as it should be stored (its id must be the target).' },
    { name: 'preview', use: 'in', min: 0, max: '1', type: 'boolean', documentation: 'Only report what would be moved.' },
    { name: 'input', use: 'out', min: 1, max: '1', type: 'Parameters', documentation: 'The parameters given.' },
    { name: 'outcome', use: 'out', min: 1, max: '1', type: 'OperationOutcome', documentation: 'What was done.' },
    { name: 'result', use: 'out', min: 0, max: '1', type: 'Patient', documentation: 'The target as stored.' },
  ],
};

export const UNMERGE_DEFINITION: OperationDefinition = {
  ...common,
  id: 'Patient-unmerge',
  url: `${FHIR_BASE}/OperationDefinition/Patient-unmerge`,
  name: 'Unmerge',
  title: 'Undo a merge',
  description: 'Gives every resource a merge moved back to the source Patient (only the references it moved), and restores both Patients and the golden records.',
  affectsState: true,
  code: 'unmerge',
  resource: ['Patient'],
  parameter: [
    { name: 'source-patient', use: 'in', min: 0, max: '1', type: 'Reference', documentation: 'The Patient that was merged away.' },
    { name: 'source-patient-identifier', use: 'in', min: 0, max: '*', type: 'Identifier', documentation: 'The same, by identifier.' },
    { name: 'outcome', use: 'out', min: 1, max: '1', type: 'OperationOutcome', documentation: 'What was restored.' },
  ],
};

export const UNLINK_DEFINITION: OperationDefinition = {
  ...common,
  type: false,
  instance: true,
  id: 'Person-unlink',
  url: `${FHIR_BASE}/OperationDefinition/Person-unlink`,
  name: 'Unlink',
  title: 'Undo a wrong link of a record to a person',
  description: 'Removes a Patient from this golden record and gives it a person of its own.',
  affectsState: true,
  code: 'unlink',
  resource: ['Person'],
  parameter: [
    { name: 'patient', use: 'in', min: 1, max: '1', type: 'Reference', documentation: 'The linked Patient to take out.' },
    { name: 'return', use: 'out', min: 1, max: '1', type: 'OperationOutcome', documentation: 'What was done.' },
  ],
};

export const LINK_DEFINITION: OperationDefinition = {
  ...UNLINK_DEFINITION,
  id: 'Person-link',
  url: `${FHIR_BASE}/OperationDefinition/Person-link`,
  name: 'Link',
  title: 'Link a record to a person',
  description: 'Moves a Patient from its current golden record into this one (e.g. after review of a possible match).',
  code: 'link',
  parameter: [
    { name: 'patient', use: 'in', min: 1, max: '1', type: 'Reference', documentation: 'The Patient to link.' },
    { name: 'return', use: 'out', min: 1, max: '1', type: 'OperationOutcome', documentation: 'What was done.' },
  ],
};

function bad(message: string, expression: string): GatewayError {
  return new GatewayError('GW_ERR_BAD_REQUEST', message, { expression });
}

function info(text: string): OperationOutcome {
  return { resourceType: 'OperationOutcome', issue: [{ severity: 'information', code: 'informational', diagnostics: text }] };
}

function parametersOf(req: FastifyRequest, name: string): Parameters {
  const body = req.body as Parameters | undefined;
  if (body?.resourceType !== 'Parameters') throw bad(`The body of ${name} must be a Parameters resource`, 'resourceType');
  return body;
}

function patientIdOf(ref: string | undefined, at: string): string {
  const m = ref && /^Patient\/([A-Za-z0-9\-.]{1,64})$/.exec(ref);
  if (!m) throw bad('Expected a reference of the form Patient/{id}', at);
  return m[1];
}

/** The one Patient named by reference or identifiers (400 if neither, 404/422 if none or several). */
async function resolvePatient(repo: Repository, ctx: RequestContext, ref: string | undefined, identifiers: Identifier[], role: string): Promise<Patient> {
  if (!ref && !identifiers.length) throw bad(`${role} or ${role}-identifier is required`, role);
  let id: string | undefined = ref ? patientIdOf(ref, role) : undefined;
  if (!id) {
    const query = { identifier: identifiers.map((i) => `${i.system ?? ''}|${i.value ?? ''}`) };
    const found = await repo.search('Patient', { ...query, _count: '2' }, ctx);
    const hits = found.entry ?? [];
    if (hits.length === 0) throw new GatewayError('GW_ERR_NOT_FOUND', `No Patient has all the ${role}-identifier values`, { expression: `${role}-identifier` });
    if (hits.length > 1) throw new GatewayError('GW_ERR_MULTIPLE_MATCHES', `More than one Patient has the ${role}-identifier values`, { expression: `${role}-identifier` });
    id = hits[0].resource?.id as string;
  }
  const row = await repo.read('Patient', id, ctx);
  return JSON.parse(row.content as string) as Patient;
}

function readInput(p: Parameters): { source?: string; sourceIds: Identifier[]; target?: string; targetIds: Identifier[]; result?: Patient; preview: boolean } {
  const out = { sourceIds: [] as Identifier[], targetIds: [] as Identifier[], preview: false } as ReturnType<typeof readInput>;
  for (const [i, param] of (p.parameter ?? []).entries()) {
    const at = `Parameters.parameter[${i}]`;
    switch (param.name) {
      case 'source-patient':
        out.source = param.valueReference?.reference ?? (() => { throw bad('source-patient needs a valueReference', at); })();
        break;
      case 'target-patient':
        out.target = param.valueReference?.reference ?? (() => { throw bad('target-patient needs a valueReference', at); })();
        break;
      case 'source-patient-identifier':
      case 'target-patient-identifier':
        if (!param.valueIdentifier?.value) throw bad(`${param.name} needs a valueIdentifier`, at);
        (param.name === 'source-patient-identifier' ? out.sourceIds : out.targetIds).push(param.valueIdentifier);
        break;
      case 'result-patient':
        if (param.resource?.resourceType !== 'Patient') throw bad('result-patient must be a Patient', at);
        out.result = param.resource;
        break;
      case 'preview':
        if (typeof param.valueBoolean !== 'boolean') throw bad('preview needs a valueBoolean', at);
        out.preview = param.valueBoolean;
        break;
      default:
        throw bad(`Unknown parameter ${String(param.name)}`, at);
    }
  }
  return out;
}

async function assertMayChange(repo: Repository, ctx: RequestContext, patient: Patient): Promise<void> {
  assertCan(ctx, 'Patient', 'u');
  const writable = await writableInstitutions(repo.db, ctx);
  const owner = institutionOf(patient);
  if (writable && (!owner || !writable.has(owner))) {
    throw new GatewayError('GW_ERR_FORBIDDEN', `Patient/${patient.id} belongs to ${owner ? `institution ${owner}` : 'no member institution'}; client "${ctx.clientId}" may correct only its own institution's records`, { expression: 'Patient' });
  }
}

export async function registerMergeRoutes(app: FastifyInstance, deps: { repository: Repository }): Promise<void> {
  const repo = deps.repository;
  const opts = { config: { interaction: 'operation' } };
  const send = (reply: import('fastify').FastifyReply, body: unknown) => reply.code(200).header('content-type', FHIR_JSON).send(body);

  app.post('/Patient/$merge', opts, async (req, reply) => {
    const ctx = restContext(req);
    assertCan(ctx, 'Patient', 'u');
    const params = parametersOf(req, '$merge');
    const input = readInput(params);
    const source = await resolvePatient(repo, ctx, input.source, input.sourceIds, 'source-patient');
    const target = await resolvePatient(repo, ctx, input.target, input.targetIds, 'target-patient');
    if (source.id === target.id) throw new GatewayError('GW_ERR_BUSINESS_RULE', 'source-patient and target-patient are the same Patient', { expression: 'target-patient' });
    if (source.active === false && source.link?.some((l) => l.type === 'replaced-by')) {
      throw new GatewayError('GW_ERR_BUSINESS_RULE', `Patient/${source.id} is already merged; $unmerge it first`, { expression: 'source-patient' });
    }
    if (input.result && input.result.id !== target.id) throw bad('result-patient must have the id of the target', 'result-patient');
    const moving = await countReferring(repo.db, source.id as string);
    if (input.preview) return send(reply, { resourceType: 'Parameters', parameter: [{ name: 'input', resource: params }, { name: 'outcome', resource: info(`Would move ${moving} resource(s) from Patient/${source.id} to Patient/${target.id}`) }, { name: 'result', resource: target }] });
    const retired: Patient = { ...source, active: false, link: [...(source.link ?? []).filter((l) => l.type !== 'replaced-by'), { other: { reference: `Patient/${target.id}` }, type: 'replaced-by' }] };
    const base = input.result ?? target;
    const survivor: Patient = { ...base, link: [...(base.link ?? []).filter((l) => l.other.reference !== `Patient/${source.id}`), { other: { reference: `Patient/${source.id}` }, type: 'replaces' }] };
    const results = await repo.write(
      [
        { method: 'PUT', type: 'Patient', id: source.id as string, resource: retired },
        { method: 'PUT', type: 'Patient', id: target.id as string, resource: survivor },
      ],
      ctx,
    );
    return send(reply, {
      resourceType: 'Parameters',
      parameter: [
        { name: 'input', resource: params },
        { name: 'outcome', resource: info(`Patient/${source.id} merged into Patient/${target.id}; ${moving} resource(s) re-pointed`) },
        { name: 'result', resource: results[1].resource },
      ],
    });
  });

  app.post('/Patient/$unmerge', opts, async (req, reply) => {
    const ctx = restContext(req);
    const input = readInput(parametersOf(req, '$unmerge'));
    const source = await resolvePatient(repo, ctx, input.source, input.sourceIds, 'source-patient');
    await assertMayChange(repo, ctx, source);
    const done = await repo.asGateway((q, write) => unmerge(q, source.id as string, ctx, write as unknown as WriteFn), ctx);
    return send(reply, info(`Merge of Patient/${done.source} into Patient/${done.target} undone; ${done.moved} resource(s) given back`));
  });

  const relink = (mode: 'unlink' | 'link') => async (req: FastifyRequest<{ Params: { id: string } }>, reply: import('fastify').FastifyReply) => {
    const ctx = restContext(req);
    assertCan(ctx, 'Person', 'u');
    const param = parametersOf(req, `$${mode}`).parameter?.find((p) => p.name === 'patient');
    const patientId = patientIdOf(param?.valueReference?.reference, 'patient');
    await resolvePatient(repo, ctx, `Patient/${patientId}`, [], 'patient');
    const personId = req.params.id;
    const text = await repo.asGateway(async (q, write) => {
      const person = await readPerson(q, personId);
      if (!person) throw new GatewayError('GW_ERR_NOT_FOUND', `Person/${personId} not found`, { expression: `Person/${personId}` });
      const links = person.link ?? [];
      const changed = new Map<string, PersonLink[]>();
      const ref = `Patient/${patientId}`;
      let outcome: string;
      if (mode === 'unlink') {
        if (!links.some((l) => l.target.reference === ref)) throw new GatewayError('GW_ERR_BUSINESS_RULE', `${ref} is not linked to Person/${personId}`, { expression: 'patient' });
        if (links.length === 1) throw new GatewayError('GW_ERR_BUSINESS_RULE', `${ref} is the only record of Person/${personId}`, { expression: 'patient' });
        const own = randomUUID();
        changed.set(personId, links.filter((l) => l.target.reference !== ref));
        changed.set(own, [{ target: { reference: ref }, assurance: 'level4' }]);
        outcome = `${ref} unlinked from Person/${personId}; it is now Person/${own}`;
      } else {
        const from = (await personsOf(q, [patientId])).get(patientId);
        if (from === personId) throw new GatewayError('GW_ERR_BUSINESS_RULE', `${ref} is already linked to Person/${personId}`, { expression: 'patient' });
        if (from) changed.set(from, ((await readPerson(q, from))?.link ?? []).filter((l) => l.target.reference !== ref));
        changed.set(personId, [...links, { target: { reference: ref }, assurance: 'level4' }]);
        outcome = `${ref} linked to Person/${personId}${from ? ` (moved from Person/${from})` : ''}`;
      }
      await (write as unknown as WriteFn)(await personWrites(q, changed));
      await recordAccess(q, ctx, [{ interaction: 'operation', operation: `mpi-${mode}`, outcome: '0', outcomeText: outcome, resources: [...changed.keys()].map((id) => `Person/${id}`), patients: [ref] }]);
      return outcome;
    }, ctx);
    return send(reply, info(text));
  };
  app.post<{ Params: { id: string } }>('/Person/:id/$unlink', opts, relink('unlink'));
  app.post<{ Params: { id: string } }>('/Person/:id/$link', opts, relink('link'));
}
