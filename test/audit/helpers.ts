/**
 * Shared by the audit tests: request contexts, access records, and tampering as someone with
 * direct database rights would (the append-only trigger disabled first).
 */
import type { Db, Queryable } from '../../src/store/index.js';
import type { RequestContext } from '../../src/fhir/context.js';
import type { AccessRecord } from '../../src/audit/index.js';

export const HIS: RequestContext = { channel: 'rest', clientId: 'his-county-hospital', institution: 'org-county-hospital', sourceIp: '10.1.2.3', purposeOfUse: 'TREAT' };
export const CLINIC: RequestContext = { channel: 'rest', clientId: 'his-town-clinic', institution: 'org-town-clinic', userId: 'doctor-li', sourceIp: '10.9.8.7' };

export function readOf(patient: string, resource = `${patient}/_history/1`): AccessRecord {
  return { interaction: 'read', outcome: '0', resources: [resource], patients: [patient] };
}

/** n records touching patients p0..p(k-1) in turn. */
export function records(n: number, patients = 50): AccessRecord[] {
  return Array.from({ length: n }, (_, i) => ({
    interaction: i % 3 === 0 ? 'create' : 'read',
    outcome: '0',
    resources: [`Observation/o${i}/_history/1`],
    patients: [`Patient/p${i % patients}`],
  }));
}

/** Runs SQL on audit_event with the append-only trigger disabled, as an attacker with table rights. */
export async function tamper(db: Db, sql: string, params: unknown[] = []): Promise<void> {
  await db.tx(async (q: Queryable) => {
    await q.query('ALTER TABLE audit_event DISABLE TRIGGER audit_event_append_only');
    await q.query(sql, params);
    await q.query('ALTER TABLE audit_event ENABLE TRIGGER audit_event_append_only');
  });
}

export async function count(db: Queryable, where = 'true', params: unknown[] = []): Promise<number> {
  const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM audit_event WHERE ${where}`, params);
  return rows[0].n;
}
