/**
 * `$validate` (FHIR R4 Resource-validate), independent of the transport.
 *
 * Input is either a bare resource or the operation's Parameters form (`resource`, `mode`,
 * `profile`); `mode` and `profile` may also come from the URL query (`params`). The outcome of
 * validation is always returned as an OperationOutcome (HTTP 200): every issue found, or one
 * `informational` issue saying the resource is valid. Only an invocation that cannot be run
 * (no resource, unknown mode, conflicting parameters) throws a GatewayError (400).
 */
import type { OperationDefinition, OperationOutcome, OperationOutcomeIssue, Parameters, Resource } from '@medplum/fhirtypes';
import { GatewayError } from '../../errors.js';
import { FHIR_BASE } from '../systems.js';
import type { ReferenceResolver, Validator } from '../validation.js';

export const VALIDATION_MODES = ['create', 'update', 'delete', 'profile'] as const;
export type ValidationMode = (typeof VALIDATION_MODES)[number];

export interface ValidateParams {
  /** A profile to validate against in addition to those the resource claims. */
  readonly profile?: string;
  readonly mode?: string;
}

/** The OperationDefinition of $validate as this server implements it, for the CapabilityStatement. */
export const OPERATION_DEFINITION: OperationDefinition = {
  resourceType: 'OperationDefinition',
  id: 'Resource-validate',
  url: `${FHIR_BASE}/OperationDefinition/Resource-validate`,
  version: '0.1.0',
  name: 'Validate',
  title: 'Validate a resource',
  status: 'active',
  kind: 'operation',
  description:
    'Validates a resource against the base R4 definition, the community profiles it claims (meta.profile) or names ' +
    '(profile), and the community rules that need other resources (Organization partOf chain). Returns all issues, ' +
    'or one informational issue when the resource is valid.',
  affectsState: false,
  code: 'validate',
  base: 'http://hl7.org/fhir/OperationDefinition/Resource-validate',
  // R4 resource-types include the abstract 'Resource'; medplum's typings list concrete types only.
  resource: ['Resource'] as unknown as OperationDefinition['resource'],
  system: false,
  type: true,
  instance: true,
  parameter: [
    { name: 'resource', use: 'in', min: 0, max: '1', type: 'Resource', documentation: 'The resource to validate (required unless mode is delete).' },
    {
      name: 'mode',
      use: 'in',
      min: 0,
      max: '1',
      type: 'code',
      documentation: 'create | update | delete | profile. update requires the resource to have an id; profile requires the profile parameter.',
      binding: { strength: 'required', valueSet: 'http://hl7.org/fhir/ValueSet/resource-validation-mode|4.0.1' },
    },
    { name: 'profile', use: 'in', min: 0, max: '1', type: 'uri', documentation: 'A profile (loaded by this server) to validate against.' },
    { name: 'return', use: 'out', min: 1, max: '1', type: 'OperationOutcome', documentation: 'All issues found, or an informational issue.' },
  ],
};

const PARAMETER_NAMES = new Set(['resource', 'mode', 'profile']);

interface Invocation {
  resource?: unknown;
  mode?: string;
  profile?: string;
}

function badRequest(message: string, expression?: string): GatewayError {
  return new GatewayError('GW_ERR_BAD_REQUEST', message, expression ? { expression } : {});
}

/** True for the operation's Parameters form, as opposed to a Parameters resource to validate. */
function isInvocation(input: unknown): input is Parameters {
  if ((input as Resource | undefined)?.resourceType !== 'Parameters') return false;
  const params = (input as Parameters).parameter;
  return Array.isArray(params) && params.length > 0 && params.every((p) => PARAMETER_NAMES.has(p?.name as string));
}

function fromParameters(p: Parameters): Invocation {
  const out: Invocation = {};
  (p.parameter ?? []).forEach((param, i) => {
    const at = `Parameters.parameter[${i}]`;
    const name = param.name as keyof Invocation;
    if (out[name] !== undefined) throw badRequest(`Parameter ${name} is given more than once`, at);
    if (name === 'resource') {
      if (!param.resource) throw badRequest('Parameter resource must carry a resource', `${at}.resource`);
      out.resource = param.resource;
    } else {
      const value = name === 'mode' ? (param.valueCode ?? param.valueString) : (param.valueUri ?? param.valueCanonical ?? param.valueString);
      if (typeof value !== 'string') throw badRequest(`Parameter ${name} needs a ${name === 'mode' ? 'valueCode' : 'valueUri'}`, at);
      out[name] = value;
    }
  });
  return out;
}

function merge(body: Invocation, params: ValidateParams): Invocation {
  const out = { ...body };
  for (const name of ['mode', 'profile'] as const) {
    const q = params[name];
    if (q === undefined) continue;
    if (out[name] !== undefined && out[name] !== q) throw badRequest(`Parameter ${name} is given twice with different values`, name);
    out[name] = q;
  }
  return out;
}

function outcome(issues: OperationOutcomeIssue[], what: string): OperationOutcome {
  const hasError = issues.some((i) => i.severity === 'error' || i.severity === 'fatal');
  if (hasError) return { resourceType: 'OperationOutcome', issue: issues };
  const note = issues.length > 0 ? `${what} is valid (with ${issues.length} warning${issues.length > 1 ? 's' : ''})` : `${what} is valid`;
  return { resourceType: 'OperationOutcome', issue: [...issues, { severity: 'information', code: 'informational', diagnostics: note }] };
}

/**
 * Runs $validate. `input` is the request body (a resource or the Parameters form); `params` the
 * URL query parameters; `resolver` looks up referenced resources for rules that need them.
 */
export async function runValidate(
  validator: Validator,
  input: unknown,
  params: ValidateParams = {},
  resolver?: ReferenceResolver,
): Promise<OperationOutcome> {
  const inv = merge(isInvocation(input) ? fromParameters(input) : { resource: input ?? undefined }, params);
  const mode = inv.mode ?? 'create';
  if (!(VALIDATION_MODES as readonly string[]).includes(mode)) {
    throw badRequest(`Unknown mode "${mode}"; expected one of ${VALIDATION_MODES.join(', ')}`, 'mode');
  }
  if (mode === 'profile' && !inv.profile) throw badRequest('mode=profile needs the profile parameter', 'profile');
  if (mode === 'delete') {
    // No rule of this server forbids a deletion; referential checks happen at the delete itself.
    return outcome([], 'Deletion');
  }
  if (inv.resource === undefined) throw badRequest('No resource to validate: send it as the body or as the resource parameter', 'resource');

  const issues = await validator.validate(inv.resource, resolver, inv.profile ? { profiles: [inv.profile] } : {});
  const resource = inv.resource as Partial<Resource>;
  if (mode === 'update' && typeof resource === 'object' && resource !== null && !resource.id) {
    issues.push({
      severity: 'error',
      code: 'required',
      diagnostics: 'mode=update: the resource must have an id',
      expression: [`${typeof resource.resourceType === 'string' ? resource.resourceType : 'Resource'}.id`],
    });
  }
  const type = typeof resource?.resourceType === 'string' ? resource.resourceType : 'Resource';
  return outcome(issues, inv.profile ? `${type} (against ${inv.profile})` : type);
}
