/**
 * The local patients that are one person: the patient named (by id or by any identifier of any
 * of its registrations) and every patient the master patient index links to the same Person, as
 * well as those linked through Patient.link (a sender's own replaced-by/see-also links), found by
 * index, transitively.
 */
import type { Patient } from '@medplum/fhirtypes';
import type { Queryable } from '../store/index.js';
import { findMatches } from '../store/search/index.js';
import { GatewayError } from '../errors.js';
import { personsByIdentifier, recordsOfPatient } from '../mpi/index.js';

const MAX_LINKED = 50;

export type PatientKey = { readonly reference: string } | { readonly identifier: string };

async function byIdentifier(db: Queryable, token: string): Promise<string[]> {
  const bar = token.indexOf('|');
  const found = new Set<string>();
  if (bar > 0 && bar < token.length - 1) {
    for (const person of await personsByIdentifier(db, { system: token.slice(0, bar), value: token.slice(bar + 1) })) {
      for (const p of person.patients) found.add(`Patient/${p.id}`);
    }
  }
  for (const r of await findMatches(db, 'Patient', { identifier: token }, MAX_LINKED)) found.add(`Patient/${r.id}`);
  return [...found];
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
    const records = await recordsOfPatient(db, id);
    if (!records) continue;
    seen.add(ref);
    for (const p of records.patients) {
      queue.push(`Patient/${p.id}`);
      for (const l of (p as Patient).link ?? []) if (l.other.reference?.startsWith('Patient/')) queue.push(l.other.reference);
    }
    for (const r of await findMatches(db, 'Patient', { link: ref }, MAX_LINKED)) queue.push(`Patient/${r.id}`);
  }
  if (seen.size === 0) {
    const named = 'reference' in key ? key.reference : `identifier ${key.identifier}`;
    throw new GatewayError('GW_ERR_NOT_FOUND', `No patient ${named}`, { expression: 'patient' });
  }
  return [...seen];
}
