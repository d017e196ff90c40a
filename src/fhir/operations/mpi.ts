/**
 * Patient identity operations of the master patient index:
 * - `$ihe-pix` (IHE PIXm ITI-83): the identifiers and Patient resources of one person at every
 *   member institution, from any one of its identifiers;
 * - `$match` (FHIR Patient-match, IHE PDQm ITI-119): known Patients that may be the one given,
 *   scored, with `match-grade`.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Bundle, Identifier, OperationDefinition, Parameters, ParametersParameter, Patient } from '@medplum/fhirtypes';
import { GatewayError } from '../../errors.js';
import { FHIR_BASE, HEALTH_CARD_SYSTEM, ID_CARD_SYSTEM, MEDICAL_INSURANCE_SYSTEM, MRN_SYSTEM_PREFIX } from '../systems.js';
import { restContext, FHIR_JSON } from '../routes.js';
import { assertCan, assertNotResident } from '../../auth/policy.js';
import { recordAccess } from '../../audit/index.js';
import type { Config } from '../../config.js';
import type { Db } from '../../store/index.js';
import { matchPatients, normaliseIdentifier, personsByIdentifier, type Thresholds } from '../../mpi/index.js';

const MATCH_GRADE = 'http://hl7.org/fhir/StructureDefinition/match-grade';

export const PIX_DEFINITION: OperationDefinition = {
  resourceType: 'OperationDefinition',
  id: 'IHE.PIXm.pix',
  url: `${FHIR_BASE}/OperationDefinition/IHE.PIXm.pix`,
  version: '0.1.0',
  name: 'PIXm',
  title: 'Patient identifier cross-reference (IHE PIXm)',
  status: 'active',
  kind: 'operation',
  description: 'From one identifier of a resident (resident ID card, health card, a local MRN), the identifiers and Patient resources of the same person at every member institution.',
  affectsState: false,
  code: 'ihe-pix',
  base: 'https://profiles.ihe.net/ITI/PIXm/OperationDefinition/IHE.PIXm.pix',
  resource: ['Patient'],
  system: false,
  type: true,
  instance: false,
  parameter: [
    { name: 'sourceIdentifier', use: 'in', min: 1, max: '1', type: 'string', documentation: 'system|value of a known identifier (token).' },
    { name: 'targetSystem', use: 'in', min: 0, max: '*', type: 'uri', documentation: 'Only identifiers (and Patients) of these systems.' },
    { name: 'targetIdentifier', use: 'out', min: 0, max: '*', type: 'Identifier', documentation: 'An identifier of the same person.' },
    { name: 'targetId', use: 'out', min: 0, max: '*', type: 'Reference', documentation: 'A Patient resource of the same person.' },
  ],
};

export const MATCH_DEFINITION: OperationDefinition = {
  resourceType: 'OperationDefinition',
  id: 'Patient-match',
  url: `${FHIR_BASE}/OperationDefinition/Patient-match`,
  version: '0.1.0',
  name: 'Match',
  title: 'Find matching Patients (IHE PDQm)',
  status: 'active',
  kind: 'operation',
  description:
    'Scores the known Patients against the demographics given (ID card, health card, name in characters or pinyin, birth date with swap and typo tolerance, sex, phone, address) and returns the likely ones, best first, with search.score and match-grade.',
  affectsState: false,
  code: 'match',
  base: 'http://hl7.org/fhir/OperationDefinition/Patient-match',
  resource: ['Patient'],
  system: false,
  type: true,
  instance: false,
  parameter: [
    { name: 'resource', use: 'in', min: 1, max: '1', type: 'Resource', documentation: 'A Patient with the demographics to match.' },
    { name: 'onlyCertainMatches', use: 'in', min: 0, max: '1', type: 'boolean', documentation: 'Only matches graded certain.' },
    { name: 'count', use: 'in', min: 0, max: '1', type: 'integer', documentation: 'Most matches returned (default 10, at most 100).' },
    { name: 'return', use: 'out', min: 1, max: '1', type: 'Bundle', documentation: 'A searchset of Patients with search.score and the match-grade extension.' },
  ],
};

function bad(message: string, expression: string): GatewayError {
  return new GatewayError('GW_ERR_BAD_REQUEST', message, { expression });
}

/** Identifier systems this community knows: ID card, health card, insurance, every institution's MRN. */
function knownSystem(system: string): boolean {
  return [ID_CARD_SYSTEM, HEALTH_CARD_SYSTEM, MEDICAL_INSURANCE_SYSTEM].includes(system) || system.startsWith(MRN_SYSTEM_PREFIX);
}

function list(v: string | string[] | undefined): string[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

interface PixInput {
  source: string;
  targets: string[];
}

function pixInput(req: FastifyRequest): PixInput {
  const q = req.query as Record<string, string | string[] | undefined>;
  const out: PixInput = { source: '', targets: list(q.targetSystem).flatMap((s) => s.split(',')) };
  const sources = list(q.sourceIdentifier);
  const body = req.body as Parameters | undefined;
  if (body && typeof body === 'object') {
    if (body.resourceType !== 'Parameters') throw bad('The body of $ihe-pix must be a Parameters resource', 'resourceType');
    for (const [i, p] of (body.parameter ?? []).entries()) {
      if (p.name === 'sourceIdentifier') {
        const v = p.valueString ?? (p.valueIdentifier ? `${p.valueIdentifier.system ?? ''}|${p.valueIdentifier.value ?? ''}` : undefined);
        if (!v) throw bad('sourceIdentifier needs a valueString (system|value) or valueIdentifier', `Parameters.parameter[${i}]`);
        sources.push(v);
      } else if (p.name === 'targetSystem') {
        const v = p.valueUri ?? p.valueString;
        if (!v) throw bad('targetSystem needs a valueUri', `Parameters.parameter[${i}]`);
        out.targets.push(v);
      } else throw bad(`Unknown parameter ${String(p.name)} for $ihe-pix`, `Parameters.parameter[${i}]`);
    }
  }
  if (sources.length !== 1) throw bad('$ihe-pix needs exactly one sourceIdentifier (system|value)', 'sourceIdentifier');
  out.source = sources[0];
  return out;
}

export async function registerMpiRoutes(app: FastifyInstance, deps: { config: Config; db: Db }): Promise<void> {
  const { db } = deps;
  const thresholds: Thresholds = { autoLink: deps.config.mpiAutoLinkWeight, review: deps.config.mpiReviewWeight };
  const base = `${deps.config.baseUrl}/fhir`;
  const opts = { config: { interaction: 'operation' } };

  const pix = async (req: FastifyRequest): Promise<Parameters> => {
    const ctx = restContext(req);
    assertNotResident(ctx, 'Patient/$ihe-pix');
    assertCan(ctx, 'Patient', 'r');
    const { source, targets } = pixInput(req);
    const bar = source.indexOf('|');
    if (bar <= 0 || bar === source.length - 1) throw bad('sourceIdentifier must be system|value', 'sourceIdentifier');
    const identifier = { system: source.slice(0, bar), value: source.slice(bar + 1) };
    // PIXm: an assigning authority the community does not know is a 400; a target domain it does not know, a 403.
    if (!knownSystem(identifier.system)) throw bad(`sourceIdentifier system ${identifier.system} is not an identifier domain of this community`, 'sourceIdentifier');
    const unknownTarget = targets.find((s) => !knownSystem(s));
    if (unknownTarget) throw new GatewayError('GW_ERR_FORBIDDEN', `targetSystem ${unknownTarget} is not an identifier domain of this community`, { expression: 'targetSystem' });
    const persons = await personsByIdentifier(db, identifier);
    if (persons.length === 0) throw new GatewayError('GW_ERR_NOT_FOUND', 'sourceIdentifier Patient Identifier not found', { expression: 'sourceIdentifier' });
    const wanted = (system: string | undefined) => !!system && (targets.length === 0 || targets.includes(system));
    const sourceValue = normaliseIdentifier(identifier.system, identifier.value);
    const parameter: ParametersParameter[] = [];
    const seen = new Set<string>();
    const patients = persons.flatMap((p) => p.patients);
    for (const patient of patients) {
      for (const i of patient.identifier ?? []) {
        if (!i.system || !i.value || !wanted(i.system)) continue;
        const value = normaliseIdentifier(i.system, i.value);
        const key = `${i.system}|${value}`;
        if ((i.system === identifier.system && value === sourceValue) || seen.has(key)) continue;
        seen.add(key);
        const out: Identifier = { system: i.system, value };
        parameter.push({ name: 'targetIdentifier', valueIdentifier: out });
      }
    }
    for (const patient of patients) {
      if (targets.length && !(patient.identifier ?? []).some((i) => wanted(i.system))) continue;
      parameter.push({ name: 'targetId', valueReference: { reference: `Patient/${patient.id}` } });
    }
    await recordAccess(db, ctx, [
      {
        interaction: 'operation',
        operation: '$ihe-pix',
        outcome: '0',
        resources: persons.map((p) => `Person/${p.person.id}`),
        patients: patients.map((p) => `Patient/${p.id}`),
        query: `Patient/$ihe-pix?targetSystem=${targets.join(',')}`,
      },
    ]);
    return { resourceType: 'Parameters', parameter };
  };
  app.get('/Patient/$ihe-pix', opts, async (req, reply) => reply.code(200).header('content-type', FHIR_JSON).send(await pix(req)));
  app.post('/Patient/$ihe-pix', opts, async (req, reply) => reply.code(200).header('content-type', FHIR_JSON).send(await pix(req)));

  app.post('/Patient/$match', opts, async (req, reply) => {
    const ctx = restContext(req);
    assertNotResident(ctx, 'Patient/$match');
    assertCan(ctx, 'Patient', 's');
    const body = req.body as Parameters | undefined;
    if (body?.resourceType !== 'Parameters') throw bad('The body of $match must be a Parameters resource', 'resourceType');
    let input: Patient | undefined;
    let onlyCertain = false;
    let count = 10;
    for (const [i, p] of (body.parameter ?? []).entries()) {
      const at = `Parameters.parameter[${i}]`;
      if (p.name === 'resource') {
        if (p.resource?.resourceType !== 'Patient') throw bad('Parameter resource must be a Patient', at);
        input = p.resource;
      } else if (p.name === 'onlyCertainMatches') {
        if (typeof p.valueBoolean !== 'boolean') throw bad('onlyCertainMatches needs a valueBoolean', at);
        onlyCertain = p.valueBoolean;
      } else if (p.name === 'count') {
        if (!Number.isSafeInteger(p.valueInteger) || (p.valueInteger as number) < 1) throw bad('count needs a positive valueInteger', at);
        count = Math.min(100, p.valueInteger as number);
      } else throw bad(`Unknown parameter ${String(p.name)} for $match`, at);
    }
    if (!input) throw bad('$match needs a Patient in the resource parameter', 'Parameters.parameter');
    let found = await matchPatients(db, input, thresholds, count);
    if (onlyCertain) found = found.filter((f) => f.result.grade === 'certain');
    const bundle: Bundle = {
      resourceType: 'Bundle',
      type: 'searchset',
      total: found.length,
      entry: found.map((f) => ({
        fullUrl: `${base}/Patient/${f.patient.id}`,
        resource: f.patient,
        search: { mode: 'match', score: f.result.score, extension: [{ url: MATCH_GRADE, valueCode: f.result.grade }] },
      })),
    };
    await recordAccess(db, ctx, [
      { interaction: 'operation', operation: '$match', outcome: '0', resources: found.map((f) => `Patient/${f.patient.id}`), patients: found.map((f) => `Patient/${f.patient.id}`) },
    ]);
    return reply.code(200).header('content-type', FHIR_JSON).send(bundle);
  });
}
