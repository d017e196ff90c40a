/**
 * JSON Schemas of the CDS Hooks 2.0 discovery response, hook request and response, written
 * from the specification (cds-hooks.hl7.org/2.0: Discovery, Calling a CDS Service, CDS Service
 * Response, Card Attributes, Suggestion, Action, Link) to check the service's shapes.
 */
const coding = {
  type: 'object',
  required: ['code'],
  properties: { system: { type: 'string' }, code: { type: 'string' }, display: { type: 'string' } },
} as const;

export const DISCOVERY_RESPONSE = {
  type: 'object',
  required: ['services'],
  properties: {
    services: {
      type: 'array',
      items: {
        type: 'object',
        required: ['hook', 'description', 'id'],
        properties: {
          hook: { type: 'string', minLength: 1 },
          title: { type: 'string' },
          description: { type: 'string', minLength: 1 },
          id: { type: 'string', pattern: '^[A-Za-z0-9_.~-]+$' },
          prefetch: { type: 'object', additionalProperties: { type: 'string' } },
          usageRequirements: { type: 'string' },
        },
        additionalProperties: false,
      },
    },
  },
} as const;

export const HOOK_REQUEST = {
  type: 'object',
  required: ['hook', 'hookInstance', 'context'],
  properties: {
    hook: { type: 'string' },
    hookInstance: { type: 'string', format: 'uuid' },
    fhirServer: { type: 'string', format: 'uri' },
    fhirAuthorization: {
      type: 'object',
      required: ['access_token', 'token_type', 'expires_in', 'scope', 'subject'],
      properties: { access_token: { type: 'string' }, token_type: { const: 'Bearer' }, expires_in: { type: 'integer' }, scope: { type: 'string' }, subject: { type: 'string' } },
    },
    context: { type: 'object' },
    prefetch: { type: 'object' },
  },
} as const;

const action = {
  type: 'object',
  required: ['type', 'description'],
  properties: {
    type: { enum: ['create', 'update', 'delete'] },
    description: { type: 'string' },
    resource: { type: 'object' },
    resourceId: { type: 'array', items: { type: 'string' } },
  },
  allOf: [{ if: { properties: { type: { const: 'delete' } } }, then: { required: ['resourceId'] } }],
} as const;

const card = {
  type: 'object',
  required: ['summary', 'indicator', 'source'],
  properties: {
    uuid: { type: 'string', format: 'uuid' },
    summary: { type: 'string', minLength: 1, maxLength: 139 },
    detail: { type: 'string' },
    indicator: { enum: ['info', 'warning', 'critical'] },
    source: {
      type: 'object',
      required: ['label'],
      properties: { label: { type: 'string', minLength: 1 }, url: { type: 'string', format: 'uri' }, icon: { type: 'string', format: 'uri' }, topic: coding },
    },
    suggestions: {
      type: 'array',
      items: { type: 'object', required: ['label'], properties: { label: { type: 'string' }, uuid: { type: 'string', format: 'uuid' }, isRecommended: { type: 'boolean' }, actions: { type: 'array', items: action } } },
    },
    selectionBehavior: { enum: ['at-most-one', 'any'] },
    overrideReasons: { type: 'array', items: coding },
    links: {
      type: 'array',
      items: {
        type: 'object',
        required: ['label', 'url', 'type'],
        properties: { label: { type: 'string' }, url: { type: 'string', format: 'uri' }, type: { enum: ['absolute', 'smart'] }, appContext: { type: 'string' } },
      },
    },
  },
  // "If suggestions are present, selectionBehavior MUST also be provided."
  dependentRequired: { suggestions: ['selectionBehavior'] },
} as const;

export const HOOK_RESPONSE = {
  type: 'object',
  required: ['cards'],
  properties: {
    cards: { type: 'array', items: card },
    systemActions: { type: 'array', items: action },
  },
} as const;
