/**
 * `$translate` (FHIR R4 ConceptMap-translate) over the in-memory terminology index, independent
 * of the transport. Input comes from URL parameters, a Parameters body, or both (the same
 * parameter twice with different values is refused). The answer is always a Parameters resource
 * with `result`, `message` and one `match` per target found; an invocation that cannot be run
 * (no code, code without system, unknown map) throws a GatewayError.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { CodeableConcept, Coding, OperationDefinition, Parameters, ParametersParameter } from '@medplum/fhirtypes';
import { GatewayError } from '../../errors.js';
import { FHIR_BASE } from '../systems.js';
import { restContext, FHIR_JSON } from '../routes.js';
import { assertCan } from '../../auth/policy.js';
import { Terminology, TerminologyLoadError, isPositive, parseConceptMap, type TranslationMatch } from '../../terminology/index.js';

/** The OperationDefinition of $translate as this server implements it, for the CapabilityStatement. */
export const OPERATION_DEFINITION: OperationDefinition = {
  resourceType: 'OperationDefinition',
  id: 'ConceptMap-translate',
  url: `${FHIR_BASE}/OperationDefinition/ConceptMap-translate`,
  version: '0.1.0',
  name: 'Translate',
  title: 'Concept Translation',
  status: 'active',
  kind: 'operation',
  description:
    'Translates a local code of a member institution (lab test, diagnosis, imaging/ECG exam) into LOINC or ICD-10 using ' +
    'the ConceptMaps the gateway loaded at start, or a ConceptMap given inline. reverse is not supported.',
  affectsState: false,
  code: 'translate',
  base: 'http://hl7.org/fhir/OperationDefinition/ConceptMap-translate',
  resource: ['ConceptMap'],
  system: false,
  type: true,
  instance: true,
  parameter: [
    { name: 'url', use: 'in', min: 0, max: '1', type: 'uri', documentation: 'Canonical URL of the ConceptMap to use (default: all loaded maps).' },
    { name: 'conceptMap', use: 'in', min: 0, max: '1', type: 'ConceptMap', documentation: 'A ConceptMap to use instead of the loaded ones (POST only).' },
    { name: 'conceptMapVersion', use: 'in', min: 0, max: '1', type: 'string', documentation: 'Version of the ConceptMap named by url.' },
    { name: 'code', use: 'in', min: 0, max: '1', type: 'code', documentation: 'The code to translate; needs system.' },
    { name: 'system', use: 'in', min: 0, max: '1', type: 'uri', documentation: 'Code system of code, e.g. an institution local system.' },
    { name: 'version', use: 'in', min: 0, max: '1', type: 'string', documentation: 'Version of system.' },
    { name: 'source', use: 'in', min: 0, max: '1', type: 'uri', documentation: 'Only maps whose source value set is this one.' },
    { name: 'coding', use: 'in', min: 0, max: '1', type: 'Coding', documentation: 'A coding to translate (in GET as system|code).' },
    { name: 'codeableConcept', use: 'in', min: 0, max: '1', type: 'CodeableConcept', documentation: 'Every coding of it is translated (POST only).' },
    { name: 'target', use: 'in', min: 0, max: '1', type: 'uri', documentation: 'Only maps whose target value set is this one.' },
    { name: 'targetsystem', use: 'in', min: 0, max: '1', type: 'uri', documentation: 'Only targets in this code system, e.g. http://loinc.org.' },
    { name: 'reverse', use: 'in', min: 0, max: '1', type: 'boolean', documentation: 'Not supported: only false is accepted.' },
    { name: 'result', use: 'out', min: 1, max: '1', type: 'boolean', documentation: 'True when at least one match is a translation (not unmatched or disjoint).' },
    { name: 'message', use: 'out', min: 0, max: '1', type: 'string', documentation: 'Why nothing matched, or how many matches were found.' },
    {
      name: 'match',
      use: 'out',
      min: 0,
      max: '*',
      documentation: 'One per target found.',
      part: [
        { name: 'equivalence', use: 'out', min: 0, max: '1', type: 'code', documentation: 'R4 ConceptMap equivalence.' },
        { name: 'concept', use: 'out', min: 0, max: '1', type: 'Coding', documentation: 'The translated concept.' },
        { name: 'source', use: 'out', min: 0, max: '1', type: 'uri', documentation: 'Canonical URL of the ConceptMap used.' },
      ],
    },
  ],
};

const STRING_PARAMS = ['url', 'conceptMapVersion', 'code', 'system', 'version', 'source', 'target', 'targetsystem', 'reverse'] as const;
type StringParam = (typeof STRING_PARAMS)[number];

export interface TranslateInvocation {
  url?: string;
  conceptMapVersion?: string;
  code?: string;
  system?: string;
  version?: string;
  source?: string;
  target?: string;
  targetsystem?: string;
  reverse?: string;
  coding?: Coding;
  codeableConcept?: CodeableConcept;
  conceptMap?: unknown;
}

function badRequest(message: string, expression?: string): GatewayError {
  return new GatewayError('GW_ERR_BAD_REQUEST', message, expression ? { expression } : {});
}

function setOnce<K extends keyof TranslateInvocation>(inv: TranslateInvocation, name: K, value: TranslateInvocation[K], at: string): void {
  const prev = inv[name];
  if (prev !== undefined && JSON.stringify(prev) !== JSON.stringify(value)) throw badRequest(`Parameter ${name} is given twice with different values`, at);
  inv[name] = value;
}

/** `system|code` (GET form of coding). */
function codingFromToken(token: string): Coding {
  const bar = token.lastIndexOf('|');
  if (bar <= 0 || bar === token.length - 1) throw badRequest('Parameter coding in the URL must be system|code', 'coding');
  return { system: token.slice(0, bar), code: token.slice(bar + 1) };
}

/** Reads URL query parameters. Repeated parameters are refused: each has max 1. */
export function fromQuery(query: Record<string, string | string[] | undefined>): TranslateInvocation {
  const inv: TranslateInvocation = {};
  for (const [name, raw] of Object.entries(query)) {
    if (raw === undefined || name === '_format' || name === '_pretty') continue;
    if (Array.isArray(raw)) throw badRequest(`Parameter ${name} is given more than once`, name);
    if ((STRING_PARAMS as readonly string[]).includes(name)) inv[name as StringParam] = raw;
    else if (name === 'coding') inv.coding = codingFromToken(raw);
    else if (name === 'codeableConcept' || name === 'conceptMap') throw badRequest(`Parameter ${name} can only be sent in a Parameters body (POST)`, name);
    else throw badRequest(`Unknown parameter ${name} for $translate`, name);
  }
  return inv;
}

/** Reads a Parameters body into `inv` (which may already hold URL parameters). */
export function fromParameters(body: unknown, inv: TranslateInvocation = {}): TranslateInvocation {
  const p = body as Parameters | undefined;
  if (p?.resourceType !== 'Parameters') throw badRequest('The body of $translate must be a Parameters resource', 'resourceType');
  (p.parameter ?? []).forEach((param: ParametersParameter, i) => {
    const at = `Parameters.parameter[${i}]`;
    const name = param.name ?? '';
    if ((STRING_PARAMS as readonly string[]).includes(name)) {
      const value =
        name === 'reverse'
          ? param.valueBoolean === undefined
            ? undefined
            : String(param.valueBoolean)
          : (param.valueUri ?? param.valueCode ?? param.valueString ?? param.valueCanonical ?? param.valueUrl);
      if (typeof value !== 'string') throw badRequest(`Parameter ${name} needs a ${name === 'reverse' ? 'valueBoolean' : 'primitive value'}`, at);
      setOnce(inv, name as StringParam, value, at);
    } else if (name === 'coding') {
      if (!param.valueCoding) throw badRequest('Parameter coding needs a valueCoding', at);
      setOnce(inv, 'coding', param.valueCoding, at);
    } else if (name === 'codeableConcept') {
      if (!param.valueCodeableConcept) throw badRequest('Parameter codeableConcept needs a valueCodeableConcept', at);
      setOnce(inv, 'codeableConcept', param.valueCodeableConcept, at);
    } else if (name === 'conceptMap') {
      if (!param.resource) throw badRequest('Parameter conceptMap needs a resource', at);
      setOnce(inv, 'conceptMap', param.resource, at);
    } else {
      throw badRequest(`Unknown parameter ${name || '(unnamed)'} for $translate`, at);
    }
  });
  return inv;
}

/** The codings to translate: exactly one of code+system, coding, codeableConcept. */
function codingsOf(inv: TranslateInvocation): Coding[] {
  const given = [inv.code !== undefined, inv.coding !== undefined, inv.codeableConcept !== undefined].filter(Boolean).length;
  if (given === 0) throw badRequest('$translate needs code and system, coding, or codeableConcept', 'code');
  if (given > 1) throw badRequest('Give only one of code, coding and codeableConcept', 'code');
  if (inv.code !== undefined) {
    if (!inv.system) throw badRequest('Parameter code needs system', 'system');
    return [{ system: inv.system, code: inv.code, ...(inv.version ? { version: inv.version } : {}) }];
  }
  if (inv.system !== undefined) throw badRequest('Parameter system is only used with code', 'system');
  const codings = inv.coding ? [inv.coding] : (inv.codeableConcept?.coding ?? []);
  if (codings.length === 0) throw badRequest('codeableConcept has no coding to translate', 'codeableConcept');
  codings.forEach((c, i) => {
    const at = inv.coding ? 'coding' : `codeableConcept.coding[${i}]`;
    if (!c.system || !c.code) throw badRequest('A coding to translate needs system and code', at);
  });
  return codings;
}

/** Which index to use: an inline map, the loaded maps, or one loaded map (by id or url). */
function indexFor(terminology: Terminology, inv: TranslateInvocation, instanceId?: string): { index: Terminology; url?: string } {
  if (inv.conceptMap !== undefined) {
    try {
      return { index: new Terminology([parseConceptMap(inv.conceptMap, 'conceptMap')]) };
    } catch (e) {
      if (e instanceof TerminologyLoadError) throw new GatewayError('GW_ERR_INVALID_RESOURCE', e.message, { expression: 'conceptMap' });
      throw e;
    }
  }
  let url = inv.url;
  if (instanceId !== undefined) {
    const map = terminology.conceptMapById(instanceId);
    if (!map) throw new GatewayError('GW_ERR_NOT_FOUND', `ConceptMap/${instanceId} is not a loaded ConceptMap`, { expression: 'id' });
    if (url !== undefined && url.split('|')[0] !== map.url) throw badRequest(`Parameter url ${url} is not the url of ConceptMap/${instanceId}`, 'url');
    url = map.url;
  }
  if (url !== undefined) {
    const map = terminology.conceptMapByUrl(url);
    if (!map) throw new GatewayError('GW_ERR_NOT_FOUND', `No ConceptMap with url ${url} is loaded`, { expression: 'url' });
    const version = inv.conceptMapVersion ?? (url.includes('|') ? url.split('|')[1] : undefined);
    if (version !== undefined && version !== map.version) {
      throw new GatewayError('GW_ERR_NOT_FOUND', `ConceptMap ${map.url} is loaded in version ${map.version ?? '(none)'}, not ${version}`, { expression: 'conceptMapVersion' });
    }
  }
  return { index: terminology, url };
}

function matchParameter(m: TranslationMatch): ParametersParameter {
  return {
    name: 'match',
    part: [
      { name: 'equivalence', valueCode: m.equivalence },
      { name: 'concept', valueCoding: m.concept },
      { name: 'source', valueUri: m.source },
    ],
  };
}

const label = (c: Coding): string => `${c.system}|${c.code}`;

/** Runs $translate; `instanceId` restricts it to one loaded ConceptMap (instance level). */
export function runTranslate(terminology: Terminology, inv: TranslateInvocation, instanceId?: string): Parameters {
  if (inv.reverse !== undefined && inv.reverse !== 'false') {
    throw new GatewayError('GW_ERR_BAD_REQUEST', 'reverse=true is not supported by this server', { expression: 'reverse' });
  }
  const codings = codingsOf(inv);
  const { index, url } = indexFor(terminology, inv, instanceId);
  const seen = new Set<string>();
  const matches: TranslationMatch[] = [];
  for (const c of codings) {
    const found = index.translate(c, {
      ...(inv.targetsystem ? { targetSystem: inv.targetsystem } : {}),
      ...(url ? { conceptMapUrl: url } : {}),
      ...(inv.source ? { sourceScope: inv.source } : {}),
      ...(inv.target ? { targetScope: inv.target } : {}),
    }).matches;
    for (const m of found) {
      const k = `${m.equivalence} ${label(m.concept)} ${m.source}`;
      if (seen.has(k)) continue;
      seen.add(k);
      matches.push(m);
    }
  }
  const result = matches.some(isPositive);
  const what = codings.map(label).join(', ');
  const to = inv.targetsystem ? ` to ${inv.targetsystem}` : '';
  const message = result
    ? `${matches.length} match${matches.length > 1 ? 'es' : ''} for ${what}${to}`
    : matches.length > 0
      ? `No translation for ${what}${to}: the maps say it has no equivalent`
      : `No mapping for ${what}${to}${url ? ` in ${url}` : ''}`;
  return {
    resourceType: 'Parameters',
    parameter: [{ name: 'result', valueBoolean: result }, { name: 'message', valueString: message }, ...matches.map(matchParameter)],
  };
}

function invocationOf(req: FastifyRequest): TranslateInvocation {
  const inv = fromQuery(req.query as Record<string, string | string[] | undefined>);
  if (req.method === 'POST') {
    if (req.body === undefined || req.body === null) throw badRequest('POST $translate needs a Parameters body', 'body');
    fromParameters(req.body, inv);
  }
  return inv;
}

/**
 * Mounts `ConceptMap/$translate` and `ConceptMap/[id]/$translate`, GET and POST, answered from
 * the in-memory index only. Reading terminology needs read rights on ConceptMap.
 */
export async function registerTranslateRoutes(app: FastifyInstance, deps: { terminology: Terminology }): Promise<void> {
  const { terminology } = deps;
  const typeLevel = async (req: FastifyRequest) => {
    assertCan(restContext(req), 'ConceptMap', 'r');
    return runTranslate(terminology, invocationOf(req));
  };
  const instanceLevel = async (req: FastifyRequest<{ Params: { id: string } }>) => {
    assertCan(restContext(req), 'ConceptMap', 'r');
    return runTranslate(terminology, invocationOf(req), req.params.id);
  };
  const opts = { config: { interaction: 'operation' } };
  app.get('/ConceptMap/$translate', opts, async (req, reply) => reply.code(200).header('content-type', FHIR_JSON).send(await typeLevel(req)));
  app.post('/ConceptMap/$translate', opts, async (req, reply) => reply.code(200).header('content-type', FHIR_JSON).send(await typeLevel(req)));
  app.get<{ Params: { id: string } }>('/ConceptMap/:id/$translate', opts, async (req, reply) =>
    reply.code(200).header('content-type', FHIR_JSON).send(await instanceLevel(req)),
  );
  app.post<{ Params: { id: string } }>('/ConceptMap/:id/$translate', opts, async (req, reply) =>
    reply.code(200).header('content-type', FHIR_JSON).send(await instanceLevel(req)),
  );
}
