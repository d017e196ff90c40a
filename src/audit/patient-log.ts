/**
 * The access log of one person, as the resident may see it (PIPL right to know who processed
 * their data): every recorded access that concerned any of their Patients, newest first, each
 * reduced to when, what was done, by which system, institution and user, why, and the outcome.
 * Network addresses and query texts stay with the auditors.
 */
import type { AuditEvent } from '@medplum/fhirtypes';
import type { Queryable } from '../store/index.js';

export interface PatientLogPage {
  readonly events: AuditEvent[];
  /** `recorded` of the last event, to continue from; undefined when there is no more. */
  readonly next?: string;
}

function reduce(e: AuditEvent): AuditEvent {
  const { resourceType, id, type, subtype, action, recorded, outcome, purposeOfEvent } = e;
  return {
    resourceType,
    id,
    type,
    subtype,
    action,
    recorded,
    outcome,
    purposeOfEvent,
    agent: (e.agent ?? []).map(({ type: agentType, who, requestor }) => ({ ...(agentType ? { type: agentType } : {}), ...(who ? { who } : {}), requestor })),
    source: e.source,
    entity: (e.entity ?? []).filter((x) => x.what?.reference).map(({ what, type: entityType, role }) => ({ what, type: entityType, role })),
  } as AuditEvent;
}

/** Accesses concerning any of `patientRefs` (`Patient/{id}`), newest first, `count` per page, before `before`. */
export async function patientAccessLog(q: Queryable, patientRefs: readonly string[], count: number, before?: string): Promise<PatientLogPage> {
  const { rows } = await q.query<{ content: string; recorded: Date | string }>(
    `SELECT content, recorded FROM audit_event
      WHERE patient_refs && $1::text[] ${before ? 'AND recorded < $3::timestamptz' : ''}
      ORDER BY recorded DESC, seq DESC LIMIT $2`,
    before ? [patientRefs, count + 1, before] : [patientRefs, count + 1],
  );
  const page = rows.slice(0, count);
  const last = page[page.length - 1];
  return {
    events: page.map((r) => reduce(JSON.parse(r.content) as AuditEvent)),
    next: rows.length > count && last ? new Date(last.recorded).toISOString() : undefined,
  };
}
