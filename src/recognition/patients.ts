/**
 * The local patients that are one person: the patient named (by id or by any of its identifiers)
 * and every patient linked to it through Patient.link, in either direction, transitively. Found
 * by index (identifier and link search parameters), not by scanning.
 */
import type { Patient } from '@medplum/fhirtypes';
import type { Queryable } from '../store/index.js';
import { findMatches } from '../store/search/index.js';
import { GatewayError } from '../errors.js';

const MAX_LINKED = 50;

export type PatientKey = { readonly reference: string } | { readonly identifier: string };

async function byIdentifier(db: Queryable, token: string): Promise<string[]> {
  const rows = await findMatches(db, 'Patient', { identifier: token }, MAX_LINKED);
  return rows.map((r) => `Patient/${r.id}`);
}

/** References (`Patient/id`) of every local patient of the person; an unknown patient is a 404. */
export async function linkedPatients(db: Queryable, key: PatientKey): Promise<string[]> {
  const start = 'reference' in key ? [key.reference] : await byIdentifier(db, key.identifier);
  const seen = new Set<string>();
  const queue = [...start];
  while (queue.length > 0 && seen.size < MAX_LINKED) {
    const ref = queue.shift() as string;
    if (seen.has(ref)) continue;
    const [type, id] = ref.split('/');
    if (type !== 'Patient' || !id) throw new GatewayError('GW_ERR_BAD_REQUEST', `patient must be a Patient reference, not "${ref}"`, { expression: 'patient' });
    const rows = await findMatches(db, 'Patient', { _id: id }, 1);
    if (rows.length === 0) continue;
    seen.add(ref);
    const patient = JSON.parse(rows[0].content as string) as Patient;
    for (const l of patient.link ?? []) if (l.other.reference?.startsWith('Patient/')) queue.push(l.other.reference);
    for (const r of await findMatches(db, 'Patient', { link: ref }, MAX_LINKED)) queue.push(`Patient/${r.id}`);
  }
  if (seen.size === 0) {
    const named = 'reference' in key ? key.reference : `identifier ${key.identifier}`;
    throw new GatewayError('GW_ERR_NOT_FOUND', `No patient ${named}`, { expression: 'patient' });
  }
  return [...seen];
}
