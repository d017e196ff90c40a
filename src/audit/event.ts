/**
 * AuditEvent content, shaped after IHE Basic Audit Log Patterns (BALP): who (client, the
 * institution it acts for, the end user when sent), what (the resources touched, one entity per
 * patient concerned, the query), when, from where (source address), outcome and purpose of use.
 * Also the searched facts of an event, stored as columns beside it.
 */
import { USCC_SYSTEM } from '../fhir/systems.js';
import type { AuditEvent, AuditEventAgent, AuditEventEntity, Coding } from '@medplum/fhirtypes';
import type { RequestContext } from '../fhir/context.js';

/**
 * FHIR RESTful interaction codes (http://hl7.org/fhir/restful-interaction), plus `token`
 * (an access token issued) and `message` (an HL7 v2 message received).
 */
export type Interaction =
  | 'read'
  | 'vread'
  | 'update'
  | 'patch'
  | 'delete'
  | 'history-instance'
  | 'history-type'
  | 'history-system'
  | 'create'
  | 'search-type'
  | 'search-system'
  | 'capabilities'
  | 'transaction'
  | 'batch'
  | 'operation'
  | 'token'
  | 'message';

export const ACTION: Readonly<Record<Interaction, NonNullable<AuditEvent['action']>>> = {
  read: 'R',
  vread: 'R',
  'history-instance': 'R',
  'history-type': 'R',
  'history-system': 'R',
  'search-type': 'E',
  'search-system': 'E',
  capabilities: 'R',
  create: 'C',
  update: 'U',
  patch: 'U',
  delete: 'D',
  transaction: 'E',
  batch: 'E',
  operation: 'E',
  token: 'E',
  message: 'C',
};

export interface AccessRecord {
  readonly interaction: Interaction;
  /** 0 success, 4 minor failure (client error), 8 serious failure (server error), 12 major failure. */
  readonly outcome: '0' | '4' | '8' | '12';
  readonly outcomeText?: string;
  /** Resources touched, as `Type/id` or `Type/id/_history/v`. */
  readonly resources: readonly string[];
  /** Patients concerned, as `Patient/id`: one entity each. */
  readonly patients: readonly string[];
  /** The search or operation asked, without personal values where avoidable. */
  readonly query?: string;
  /** Name of the operation (`$everything`) for interaction `operation`. */
  readonly operation?: string;
  /** HL7 v2 message type (`ADT^A01`) and control id for interaction `message`. */
  readonly messageType?: string;
  readonly messageControlId?: string;
}

const DCM = 'http://dicom.nema.org/resources/ontology/DCM';
const EVENT_TYPE = 'http://terminology.hl7.org/CodeSystem/audit-event-type';
const INTERACTION_SYSTEM = 'http://hl7.org/fhir/restful-interaction';
const GATEWAY_INTERACTION = 'urn:county-hie:audit-interaction';
const ENTITY_TYPE = 'http://terminology.hl7.org/CodeSystem/audit-entity-type';
const ROLE = 'http://terminology.hl7.org/CodeSystem/object-role';
const PURPOSE = 'http://terminology.hl7.org/CodeSystem/v3-ActReason';
export const CLIENT_SYSTEM = 'urn:county-hie:client';
export const USER_SYSTEM = 'urn:county-hie:user';

function typeAndSubtype(rec: AccessRecord): Pick<AuditEvent, 'type' | 'subtype'> {
  switch (rec.interaction) {
    case 'token':
      return {
        type: { system: DCM, code: '110114', display: 'User Authentication' },
        subtype: [
          { system: DCM, code: '110122', display: 'Login' },
          { system: GATEWAY_INTERACTION, code: 'token' },
        ],
      };
    case 'message':
      return {
        type: { system: DCM, code: '110107', display: 'Import' },
        subtype: [
          { system: GATEWAY_INTERACTION, code: 'message' },
          ...(rec.messageType ? [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0076', code: rec.messageType }] : []),
        ],
      };
    default: {
      const subtype: Coding[] = [{ system: INTERACTION_SYSTEM, code: rec.interaction }];
      if (rec.operation) subtype.push({ system: GATEWAY_INTERACTION, code: rec.operation });
      return { type: { system: EVENT_TYPE, code: 'rest', display: 'RESTful Operation' }, subtype };
    }
  }
}

/** `Type/id` of a reference, without base URL or `/_history/v`; undefined when not of that form. */
export function plainReference(ref: string): string | undefined {
  const m = /(?:^|\/)([A-Z][A-Za-z]{0,63})\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/[A-Za-z0-9\-.]{1,64})?$/.exec(ref);
  return m ? `${m[1]}/${m[2]}` : undefined;
}

/** The AuditEvent of one access, without id (given by the chain when it is appended). */
export function buildAuditEvent(ctx: RequestContext, rec: AccessRecord, recorded: string): AuditEvent {
  const patients = [...new Set(rec.patients)];
  const entity: AuditEventEntity[] = [
    ...patients.map((p) => ({
      what: { reference: p },
      type: { system: ENTITY_TYPE, code: '1', display: 'Person' },
      role: { system: ROLE, code: '1', display: 'Patient' },
    })),
    ...rec.resources
      .filter((r) => !patients.includes(r))
      .map((r) => ({
        what: { reference: r },
        type: { system: ENTITY_TYPE, code: '2', display: 'System Object' },
        role: { system: ROLE, code: '4', display: 'Domain Resource' },
      })),
  ];
  if (rec.query) {
    entity.push({ type: { system: ENTITY_TYPE, code: '2', display: 'System Object' }, role: { system: ROLE, code: '24', display: 'Query' }, query: Buffer.from(rec.query).toString('base64') });
  }
  if (rec.messageControlId) {
    entity.push({ type: { system: ENTITY_TYPE, code: '2', display: 'System Object' }, role: { system: ROLE, code: '3', display: 'Report' }, what: { identifier: { value: rec.messageControlId } } });
  }
  const agent: AuditEventAgent[] = [
    {
      type: { coding: [{ system: DCM, code: '110153', display: 'Source Role ID' }] },
      who: { identifier: { system: CLIENT_SYSTEM, value: ctx.clientId ?? 'anonymous' } },
      requestor: !ctx.userId,
      ...(ctx.sourceIp ? { network: { address: ctx.sourceIp, type: '2' as const } } : {}),
    },
  ];
  if (ctx.userId) agent.push({ who: { identifier: { system: USER_SYSTEM, value: ctx.userId } }, requestor: true });
  // The member institution the client acts for, by its unified social credit code.
  if (ctx.institution) {
    agent.push({ type: { text: 'member institution' }, who: { type: 'Organization', identifier: { system: USCC_SYSTEM, value: ctx.institution } }, requestor: false });
  }
  agent.push({
    type: { coding: [{ system: DCM, code: '110152', display: 'Destination Role ID' }] },
    who: { display: 'county-hie-gateway' },
    requestor: false,
  });
  return {
    resourceType: 'AuditEvent',
    ...typeAndSubtype(rec),
    action: ACTION[rec.interaction],
    recorded,
    outcome: rec.outcome,
    ...(rec.outcomeText ? { outcomeDesc: rec.outcomeText } : {}),
    purposeOfEvent: [{ coding: [{ system: PURPOSE, code: ctx.purposeOfUse ?? 'TREAT' }] }],
    agent,
    source: {
      observer: { display: 'county-hie-gateway' },
      type: [{ system: 'http://terminology.hl7.org/CodeSystem/security-source-type', code: '4', display: 'Application Server' }],
    },
    entity,
  };
}

/** The facts of an event that auditors search by, stored as indexed columns beside its JSON. */
export interface EventColumns {
  readonly action: string;
  readonly subtype: string;
  readonly outcome: string;
  readonly patientRefs: string[];
  readonly entityRefs: string[];
}

export function eventColumns(rec: AccessRecord): EventColumns {
  const patientRefs = [...new Set(rec.patients.map((p) => plainReference(p) ?? p))];
  const entityRefs = [...new Set([...patientRefs, ...rec.resources.map((r) => plainReference(r) ?? r)])];
  // An operation is searched by its name (`subtype=$merge`, `subtype=mpi-link`), other accesses by their interaction.
  const subtype = rec.interaction === 'operation' && rec.operation ? rec.operation : rec.interaction;
  return { action: ACTION[rec.interaction], subtype, outcome: rec.outcome, patientRefs, entityRefs };
}
