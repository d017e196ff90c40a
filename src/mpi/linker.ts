/**
 * Identity linking inside the one write path. Every Patient written, by whatever door, is matched
 * in the same database transaction against the records already known:
 * - a valid resident ID card number (or health card number) shared with a known record links
 *   deterministically;
 * - otherwise the best probabilistic weight decides: at or above the auto-link threshold the
 *   record joins that person, between the thresholds it starts a person of its own and a review
 *   Task is queued, below it starts a person of its own.
 * An ID card number that conflicts with the record's birth date or sex (or fails its check) is
 * flagged on the Patient (meta.tag) and trusted for nothing: such a record is never auto-linked.
 *
 * The person is a `Person` resource (the golden record) whose `link`s name the local Patients.
 * Local Patients stay as their institutions wrote them: linking never changes a record that
 * belongs to a member institution, and a wrong link is undone by editing only the Person.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Patient, Person, PersonLink, Resource, Task } from '@medplum/fhirtypes';
import type { Queryable } from '../store/index.js';
import type { RequestContext } from '../fhir/context.js';
import { recordAccess, type AccessRecord } from '../audit/index.js';
import { demographicsOf, type Demographics } from './demographics.js';
import { compareDemographics, type MatchResult, type Thresholds } from './score.js';
import { MPI_FLAG_SYSTEM, MPI_TAG, MPI_TASK_SYSTEM, personContent } from './person.js';

/** A write request as the write path takes it (kept structural so the MPI does not import the write path). */
export interface NestedWrite {
  readonly method: 'POST' | 'PUT' | 'DELETE';
  readonly type: string;
  readonly id?: string;
  readonly resource?: Resource;
}
export type WriteFn = (requests: readonly NestedWrite[]) => Promise<unknown>;

export interface LinkOutcome {
  readonly patient: string;
  readonly person: string;
  readonly action: 'linked' | 'new-person' | 'kept';
  readonly result?: MatchResult;
  /** Persons queued for review with this record. */
  readonly review: readonly string[];
}

/** Most candidate persons queued for review with one new record. */
const MAX_REVIEW_CANDIDATES = 3;

function hashKey(key: string): string {
  return createHash('sha256').update(key).digest('base64url').slice(0, 24);
}

function swapped(date: string): string | undefined {
  const [y, m, d] = date.split('-');
  return Number(d) <= 12 && m !== d ? `${y}-${d}-${m}` : undefined;
}

/** Keys a record is stored under. */
export function blockingKeys(d: Demographics): string[] {
  const keys: string[] = [];
  if (d.idCard) keys.push(`id:${d.idCard}`);
  if (d.healthCard) keys.push(`hc:${d.healthCard}`);
  if (d.fuzzy) keys.push(`n:${d.fuzzy}`);
  if (d.birthDate) keys.push(`b:${d.birthDate}`);
  for (const p of d.phones) keys.push(`p:${p}`);
  return keys.map(hashKey);
}

/** Keys a record looks candidates up under: its own, and its birth date with day and month swapped. */
function lookupKeys(d: Demographics): string[] {
  const keys = blockingKeys(d);
  const s = d.birthDate && swapped(d.birthDate);
  if (s) keys.push(hashKey(`b:${s}`));
  return keys;
}

/** The Person (golden record) each of these Patients is linked to. */
export async function personsOf(q: Queryable, patientIds: readonly string[]): Promise<Map<string, string>> {
  if (patientIds.length === 0) return new Map();
  const { rows } = await q.query<{ patient: string; person: string }>(
    `SELECT s.target_id AS patient, r.id AS person
       FROM sp_reference s JOIN resource r ON r.rid = s.rid AND NOT r.deleted
      WHERE s.rtype = 'Person' AND s.code = 'link' AND s.target_type = 'Patient' AND s.target_id = ANY($1::text[])`,
    [patientIds],
  );
  return new Map(rows.map((r) => [r.patient, r.person]));
}

/** The current content of resources by type and ids (deleted ones left out). */
export async function readMany<T extends Resource>(q: Queryable, type: string, ids: readonly string[]): Promise<Map<string, T>> {
  if (ids.length === 0) return new Map();
  const { rows } = await q.query<{ id: string; content: string }>(`SELECT id, content FROM resource WHERE type = $1 AND id = ANY($2::text[]) AND NOT deleted`, [type, ids]);
  return new Map(rows.map((r) => [r.id, JSON.parse(r.content) as T]));
}

/** True for a record merged into another (inactive, replaced-by): never a candidate. */
export function isRetired(p: Patient): boolean {
  return p.active === false && (p.link ?? []).some((l) => l.type === 'replaced-by');
}

/** Takes the transaction lock of each key, in sorted order (storeKeys takes them the same way). */
async function lockKeys(q: Queryable, keys: readonly string[]): Promise<void> {
  await q.query(`SELECT count(pg_advisory_xact_lock(hashtext('mpi:' || k))) FROM (SELECT DISTINCT k FROM unnest($1::text[]) k ORDER BY k) s`, [keys]);
}

/**
 * Replaces the keys a record is stored under. With `lock`, first takes a transaction lock on each
 * of those keys, so that two concurrent writes of one person cannot both start a new person.
 */
export async function storeKeys(q: Queryable, patientId: string, keys: readonly string[], lock: readonly string[] = []): Promise<void> {
  await q.query(
    `WITH locked AS (SELECT count(pg_advisory_xact_lock(hashtext('mpi:' || k))) AS n FROM (SELECT DISTINCT k FROM unnest($3::text[]) k ORDER BY k) s),
          gone AS (DELETE FROM mpi_block WHERE patient_id = $1 AND NOT (key = ANY($2::text[])) AND (SELECT n FROM locked) >= 0)
     INSERT INTO mpi_block (patient_id, key)
     SELECT $1, k FROM unnest($2::text[]) k, locked ON CONFLICT DO NOTHING`,
    [patientId, [...new Set(keys)], lock],
  );
}

export interface CandidateRecord {
  readonly id: string;
  readonly patient: Patient;
  /** The person it is linked to, if any. */
  readonly person: string | null;
}

/** The known records that share a blocking key with `d` (at most 500), with their person. */
export async function candidateRecords(q: Queryable, d: Demographics): Promise<CandidateRecord[]> {
  const { rows } = await q.query<{ id: string; content: string; person: string | null }>(
    `SELECT r.id, r.content,
            (SELECT pr.id FROM sp_reference s JOIN resource pr ON pr.rid = s.rid AND NOT pr.deleted
              WHERE s.rtype = 'Person' AND s.code = 'link' AND s.target_type = 'Patient' AND s.target_id = r.id LIMIT 1) AS person
       FROM resource r
      WHERE r.type = 'Patient' AND NOT r.deleted
        AND r.id IN (SELECT patient_id FROM mpi_block WHERE key = ANY($1::text[]) AND patient_id <> $2)
      LIMIT 500`,
    [lookupKeys(d), d.id],
  );
  return rows.map((r) => ({ id: r.id, patient: JSON.parse(r.content) as Patient, person: r.person }));
}

interface PersonCandidate {
  readonly person: string;
  best: MatchResult;
  sameInstitution: boolean;
}

/** Scores the known records near `d`, grouped by the person they belong to, best first. */
export async function scoreCandidates(
  q: Queryable,
  d: Demographics,
  thresholds: Thresholds,
  exclude: ReadonlySet<string> = new Set(),
  overlay: ReadonlyMap<string, string> = new Map(),
): Promise<PersonCandidate[]> {
  const rows = await candidateRecords(q, d);
  const byPerson = new Map<string, PersonCandidate>();
  for (const row of rows) {
    if (exclude.has(row.id)) continue;
    const { patient } = row;
    const person = overlay.get(row.id) ?? row.person;
    if (!person || isRetired(patient)) continue;
    const other = demographicsOf(patient);
    const result = compareDemographics(d, other, thresholds);
    const same = other.institutions.some((i) => d.institutions.includes(i));
    const c = byPerson.get(person);
    if (!c) {
      byPerson.set(person, { person, best: result, sameInstitution: same });
      continue;
    }
    c.sameInstitution ||= same;
    // A different valid ID card number anywhere in the person rules the person out.
    if (c.best.weight === -Infinity) continue;
    if (result.weight === -Infinity || result.weight > c.best.weight) c.best = result;
  }
  return [...byPerson.values()].sort((a, b) => b.best.weight - a.best.weight);
}

function reviewTask(patientId: string, candidate: PersonCandidate, reason: string): Task {
  return {
    resourceType: 'Task',
    meta: { tag: [MPI_TAG] },
    status: 'requested',
    intent: 'proposal',
    priority: 'routine',
    code: { coding: [{ system: MPI_TASK_SYSTEM, code: 'review-link', display: 'Review a possible link of two records of one person' }] },
    description: reason,
    focus: { reference: `Patient/${patientId}` },
    for: { reference: `Patient/${patientId}` },
    authoredOn: new Date().toISOString(),
    input: [
      { type: { text: 'candidate' }, valueReference: { reference: `Person/${candidate.person}` } },
      { type: { text: 'score' }, valueDecimal: candidate.best.score },
      { type: { text: 'match-grade' }, valueCode: candidate.best.grade },
      { type: { text: 'reasons' }, valueString: candidate.best.reasons.join(' ') },
    ],
  };
}

export interface LinkerOptions {
  readonly thresholds: Thresholds;
}

/** Adds or clears the ID-card conflict flag on a Patient about to be stored. */
export function flagPatient(patient: Patient): void {
  const d = demographicsOf(patient);
  const tags = (patient.meta?.tag ?? []).filter((t) => t.system !== MPI_FLAG_SYSTEM);
  for (const c of d.idCardConflicts) {
    const display = { invalid: 'ID card number fails the GB 11643 check', 'birth-date': 'birth date differs from the one in the ID card number', sex: 'sex differs from the one in the ID card number' }[c];
    tags.push({ system: MPI_FLAG_SYSTEM, code: `id-card-${c}`, display });
  }
  if (tags.length) patient.meta = { ...(patient.meta ?? {}), tag: tags };
  else if (patient.meta?.tag) delete patient.meta.tag;
}

/** The write requests that store each Person from its links (PUT), or delete it when no link is left. */
export async function personWrites(q: Queryable, persons: ReadonlyMap<string, readonly PersonLink[]>): Promise<NestedWrite[]> {
  const ids = [...persons.values()].flatMap((links) => links.map((l) => (l.target.reference ?? '').replace(/^Patient\//, '')));
  const [patients, stored] = await Promise.all([readMany<Patient>(q, 'Patient', ids), readMany<Person>(q, 'Person', [...persons.keys()])]);
  const same = (a: Person | undefined, b: Person) => !!a && JSON.stringify({ ...a, meta: undefined }) === JSON.stringify({ ...b, meta: undefined });
  const out: NestedWrite[] = [];
  for (const [id, links] of persons) {
    if (links.length === 0) {
      out.push({ method: 'DELETE', type: 'Person', id });
      continue;
    }
    const next = personContent(id, links, patients);
    // An update that changes nothing of the golden record writes no new version of it.
    if (!same(stored.get(id), { ...next, meta: stored.get(id)?.meta })) out.push({ method: 'PUT', type: 'Person', id, resource: next });
  }
  return out;
}

/** Re-derives one Person from its links and writes it. */
export async function rewritePerson(q: Queryable, write: WriteFn, personId: string, links: readonly PersonLink[]): Promise<void> {
  await write(await personWrites(q, new Map([[personId, links]])));
}

export async function readPerson(q: Queryable, personId: string): Promise<Person | undefined> {
  return (await readMany<Person>(q, 'Person', [personId])).get(personId);
}

/**
 * Links Patients just stored (step "links identities" of the write path). `ctx` is the writer's
 * context, for the audit records; `write` stores Persons and Tasks through the write path with
 * the gateway's own rights. The Persons a transaction changes are written once, at the end; until
 * then later records of the same transaction see the links made for earlier ones.
 */
export async function linkPatients(q: Queryable, patients: readonly Patient[], ctx: RequestContext, write: WriteFn, options: LinkerOptions): Promise<LinkOutcome[]> {
  const out: LinkOutcome[] = [];
  /** Persons changed by this call: id → links. */
  const pending = new Map<string, PersonLink[]>();
  /** Patients linked by this call: id → person. */
  const linked = new Map<string, string>();
  const tasks: Task[] = [];
  const audits: AccessRecord[] = [];
  const linksOf = async (personId: string): Promise<PersonLink[]> => pending.get(personId) ?? (await readPerson(q, personId))?.link ?? [];
  // The keys of every record of the transaction are locked at once, in one sorted order: two
  // transactions linking many records each (extract batches) then cannot deadlock on them.
  const demographics = patients.map((p) => demographicsOf(p));
  if (patients.length > 1) await lockKeys(q, demographics.filter((_, i) => !isRetired(patients[i])).flatMap(lookupKeys));

  for (const [i, patient] of patients.entries()) {
    const d = demographics[i];
    if (isRetired(patient)) {
      await storeKeys(q, d.id, []);
      continue;
    }
    // A first version cannot be linked yet, unless earlier in this transaction.
    const current = linked.get(d.id) ?? (patient.meta?.versionId === '1' ? undefined : (await personsOf(q, [d.id])).get(d.id));
    if (current) {
      // Already one person's: refresh its keys and the golden record; links change only by link/unlink/merge.
      await storeKeys(q, d.id, blockingKeys(d));
      pending.set(current, await linksOf(current));
      out.push({ patient: d.id, person: current, action: 'kept', review: [] });
      continue;
    }
    await storeKeys(q, d.id, blockingKeys(d), lookupKeys(d));
    const candidates = await scoreCandidates(q, d, options.thresholds, new Set(), linked);
    const conflicted = d.idCardConflicts.length > 0;
    const best = candidates[0];
    // A conflicting ID card number is used for nothing: the link, if any, rests on the other fields,
    // and the record is queued for a person to check either way.
    const auto = best && (best.best.deterministic ? best.best.weight === Infinity : !best.sameInstitution && best.best.weight >= options.thresholds.autoLink);
    // The best few candidates go to review; a crowd of look-alikes is one question, not dozens.
    const review: PersonCandidate[] = candidates.filter((c) => (c === best && auto ? conflicted : c.best.weight >= options.thresholds.review)).slice(0, MAX_REVIEW_CANDIDATES);
    let personId: string;
    if (auto) {
      personId = best.person;
      pending.set(personId, [...(await linksOf(personId)), { target: { reference: `Patient/${d.id}` }, assurance: best.best.deterministic ? 'level4' : 'level3' }]);
    } else {
      personId = randomUUID();
      pending.set(personId, [{ target: { reference: `Patient/${d.id}` }, assurance: d.idCard ? 'level4' : 'level3' }]);
    }
    linked.set(d.id, personId);
    for (const c of review) {
      tasks.push(
        reviewTask(d.id, c, conflicted ? 'The ID card number of this record conflicts with its demographics; check the link by hand' : c.sameInstitution ? 'The candidate already has a record at the same institution' : 'Probable match below the auto-link threshold'),
      );
    }
    audits.push({
      interaction: 'operation',
      operation: auto ? 'mpi-link' : 'mpi-new-person',
      outcome: '0',
      outcomeText: auto ? `linked (${best.best.grade}, score ${best.best.score}; ${best.best.reasons.join(' ')})` : `new person${review.length ? `; ${review.length} candidate(s) queued for review` : ''}`,
      resources: [`Person/${personId}`, ...review.map((c) => `Person/${c.person}`)],
      patients: [`Patient/${d.id}`],
    });
    out.push({ patient: d.id, person: personId, action: auto ? 'linked' : 'new-person', result: best?.best, review: review.map((c) => c.person) });
  }
  const writes = [...(await personWrites(q, pending)), ...tasks.map((t) => ({ method: 'POST' as const, type: 'Task', resource: t }))];
  if (writes.length) await write(writes);
  if (audits.length) await recordAccess(q, ctx, audits);
  return out;
}

/** Removes deleted Patients from their person. */
export async function unlinkDeleted(q: Queryable, patientIds: readonly string[], write: WriteFn): Promise<void> {
  const persons = await personsOf(q, patientIds);
  for (const id of patientIds) {
    await storeKeys(q, id, []);
    const personId = persons.get(id);
    if (!personId) continue;
    const person = await readPerson(q, personId);
    await rewritePerson(q, write, personId, (person?.link ?? []).filter((l) => l.target.reference !== `Patient/${id}`));
  }
}
