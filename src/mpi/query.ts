/**
 * Questions asked of the master patient index: who is this identifier (PIXm cross-reference),
 * which known records look like this Patient (PDQm $match), which local records make up a person.
 */
import type { Identifier, Patient, Person } from '@medplum/fhirtypes';
import type { Queryable } from '../store/index.js';
import { ID_CARD_SYSTEM } from '../fhir/systems.js';
import { parseIdCard } from './id-card.js';
import { demographicsOf } from './demographics.js';
import { candidateRecords, personsOf, readMany } from './linker.js';
import { compareDemographics, type MatchResult, type Thresholds } from './score.js';

/** An identifier value as stored and compared: ID card numbers in their 18-character form. */
export function normaliseIdentifier(system: string, value: string): string {
  if (system !== ID_CARD_SYSTEM) return value.trim();
  const parsed = parseIdCard(value);
  return parsed.ok ? parsed.value : value.trim().toUpperCase();
}

/** Ids of current resources of `type` carrying the identifier system|value. */
async function byIdentifier(q: Queryable, type: 'Patient' | 'Person', system: string, values: readonly string[]): Promise<string[]> {
  const { rows } = await q.query<{ id: string }>(
    `SELECT DISTINCT r.id FROM sp_token t JOIN resource r ON r.rid = t.rid AND NOT r.deleted
      WHERE t.rtype = $1 AND t.code = 'identifier' AND t.system = $2 AND t.value = ANY($3::text[])`,
    [type, system, values],
  );
  return rows.map((r) => r.id);
}

export interface PersonRecords {
  readonly person: Person;
  /** The local Patients linked to the person, current content. */
  readonly patients: readonly Patient[];
}

/** A person with the current content of each of its linked Patients. */
export async function personRecords(q: Queryable, personId: string): Promise<PersonRecords | undefined> {
  const person = (await readMany<Person>(q, 'Person', [personId])).get(personId);
  if (!person) return undefined;
  const ids = (person.link ?? []).map((l) => (l.target.reference ?? '').replace(/^Patient\//, ''));
  const patients = await readMany<Patient>(q, 'Patient', ids);
  return { person, patients: ids.map((id) => patients.get(id)).filter((p): p is Patient => !!p) };
}

/** The person a local Patient belongs to, with all its records; a Patient with no person stands alone. */
export async function recordsOfPatient(q: Queryable, patientId: string): Promise<{ person?: Person; patients: readonly Patient[] } | undefined> {
  const personId = (await personsOf(q, [patientId])).get(patientId);
  if (personId) {
    const found = await personRecords(q, personId);
    if (found) return found;
  }
  const self = (await readMany<Patient>(q, 'Patient', [patientId])).get(patientId);
  return self ? { patients: [self] } : undefined;
}

/**
 * Every person known by an identifier: Patients carrying it (at any institution) and Persons
 * carrying it (the golden record holds each of its records' identifiers). An ID card number is
 * looked up in both its 15- and 18-character forms.
 */
export async function personsByIdentifier(q: Queryable, identifier: Required<Pick<Identifier, 'system' | 'value'>>): Promise<PersonRecords[]> {
  const value = normaliseIdentifier(identifier.system, identifier.value);
  const values = [...new Set([value, identifier.value.trim()])];
  if (identifier.system === ID_CARD_SYSTEM && value.length === 18) values.push(value.slice(0, 6) + value.slice(8, 17));
  const [patients, persons] = await Promise.all([byIdentifier(q, 'Patient', identifier.system, values), byIdentifier(q, 'Person', identifier.system, values)]);
  const ids = new Set([...persons, ...(await personsOf(q, patients)).values()]);
  const out: PersonRecords[] = [];
  for (const id of ids) {
    const r = await personRecords(q, id);
    if (r) out.push(r);
  }
  return out;
}

export interface ScoredPatient {
  readonly patient: Patient;
  readonly person?: string;
  readonly result: MatchResult;
}

/** Known Patients that may be the given one, best first; those graded certainly-not are left out. */
export async function matchPatients(q: Queryable, input: Patient, thresholds: Thresholds, count: number): Promise<ScoredPatient[]> {
  const d = demographicsOf({ ...input, id: '' });
  const rows = await candidateRecords(q, d);
  return rows
    .map((r) => ({ patient: r.patient, person: r.person ?? undefined, result: compareDemographics(d, demographicsOf(r.patient), thresholds) }))
    .filter((s) => s.result.grade !== 'certainly-not' && s.patient.active !== false)
    .sort((a, b) => b.result.weight - a.result.weight)
    .slice(0, count);
}
