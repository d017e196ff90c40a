/**
 * The audit trail: one AuditEvent per access, shaped after IHE Basic Audit Log Patterns (BALP),
 * appended to the audit_event table in the same database transaction as the access it records.
 */
import { randomUUID } from 'node:crypto';
import type { AuditEvent, AuditEventEntity } from '@medplum/fhirtypes';
import type { Queryable } from '../store/index.js';
import type { RequestContext } from '../fhir/context.js';

/** FHIR RESTful interaction codes (http://hl7.org/fhir/restful-interaction). */
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
  | 'operation';

const ACTION: Record<Interaction, AuditEvent['action']> = {
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
};

export interface AccessRecord {
  readonly interaction: Interaction;
  /** 0 success, 4 minor failure (client error), 8 serious failure (server error). */
  readonly outcome: '0' | '4' | '8';
  readonly outcomeText?: string;
  /** Resources touched, as `Type/id` or `Type/id/_history/v`. */
  readonly resources: readonly string[];
  /** Patients concerned, as `Patient/id`: one entity each. */
  readonly patients: readonly string[];
  /** The search or operation asked, without personal values where avoidable. */
  readonly query?: string;
}

const RESTFUL = 'http://terminology.hl7.org/CodeSystem/audit-event-type';
const INTERACTION_SYSTEM = 'http://hl7.org/fhir/restful-interaction';
const ROLE = 'http://terminology.hl7.org/CodeSystem/object-role';

export function buildAuditEvent(ctx: RequestContext, rec: AccessRecord, recorded: string): AuditEvent {
  const entity: AuditEventEntity[] = [
    ...rec.patients.map((p) => ({ what: { reference: p }, type: { system: 'http://terminology.hl7.org/CodeSystem/audit-entity-type', code: '1', display: 'Person' }, role: { system: ROLE, code: '1', display: 'Patient' } })),
    ...rec.resources
      .filter((r) => !rec.patients.includes(r))
      .map((r) => ({ what: { reference: r }, type: { system: 'http://terminology.hl7.org/CodeSystem/audit-entity-type', code: '2', display: 'System Object' }, role: { system: ROLE, code: '4', display: 'Domain Resource' } })),
  ];
  if (rec.query) entity.push({ type: { system: 'http://terminology.hl7.org/CodeSystem/audit-entity-type', code: '2' }, role: { system: ROLE, code: '24', display: 'Query' }, query: Buffer.from(rec.query).toString('base64') });
  return {
    resourceType: 'AuditEvent',
    type: { system: RESTFUL, code: 'rest', display: 'RESTful Operation' },
    subtype: [{ system: INTERACTION_SYSTEM, code: rec.interaction }],
    action: ACTION[rec.interaction],
    recorded,
    outcome: rec.outcome,
    ...(rec.outcomeText ? { outcomeDesc: rec.outcomeText } : {}),
    purposeOfEvent: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: ctx.purposeOfUse ?? 'TREAT' }] }],
    agent: [
      {
        type: { coding: [{ system: 'http://dicom.nema.org/resources/ontology/DCM', code: '110153', display: 'Source Role ID' }] },
        who: { identifier: { system: 'urn:county-hie:client', value: ctx.clientId ?? 'anonymous' } },
        ...(ctx.institution ? { location: { reference: `Organization/${ctx.institution}` } } : {}),
        requestor: true,
        ...(ctx.sourceIp ? { network: { address: ctx.sourceIp, type: '2' as const } } : {}),
      },
      ...(ctx.userId ? [{ who: { identifier: { value: ctx.userId } }, requestor: true }] : []),
    ],
    source: { observer: { display: 'county-hie-gateway' }, type: [{ system: 'http://terminology.hl7.org/CodeSystem/security-source-type', code: '4', display: 'Application Server' }] },
    entity,
  };
}

/** Appends AuditEvents (one statement for all of them). */
export async function recordAccess(q: Queryable, ctx: RequestContext, records: readonly AccessRecord[]): Promise<void> {
  if (records.length === 0) return;
  const recorded = new Date().toISOString();
  const events = records.map((r) => ({ ...buildAuditEvent(ctx, r, recorded), id: randomUUID() }));
  await q.query(
    `INSERT INTO audit_event (id, recorded, action, outcome, client_id, patient_refs, content)
     SELECT x.id, $2::timestamptz, x.action, x.outcome, $3, string_to_array(x.patients, ' '), x.content
       FROM unnest($1::text[], $4::text[], $5::text[], $6::text[], $7::text[]) AS x(id, action, outcome, patients, content)`,
    [
      events.map((e) => e.id),
      recorded,
      ctx.clientId ?? null,
      events.map((e) => e.subtype?.[0]?.code ?? ''),
      events.map((e) => e.outcome),
      records.map((r) => r.patients.join(' ')),
      events.map((e) => JSON.stringify(e)),
    ],
  );
}
