/**
 * Merging duplicate Patients, and undoing it. A Patient stored inactive with a `replaced-by` link
 * (by ADT^A40/A34, by `Patient/$merge`, or by any other door) is merged into the Patient it names,
 * inside the same transaction: every resource that referred to the source is re-pointed to the
 * target as a new version (history kept), the source's record joins the target's person, and
 * what was moved is kept in `mpi_merge`, so that `$unmerge` can give each resource back to the
 * patient it had before, reference by reference.
 */
import { randomUUID } from 'node:crypto';
import type { Patient, PatientLink, PersonLink, Resource } from '@medplum/fhirtypes';
import { readVersion, type Queryable } from '../store/index.js';
import type { RequestContext } from '../fhir/context.js';
import { findReferences } from '../fhir/references.js';
import { recordAccess } from '../audit/index.js';
import { GatewayError } from '../errors.js';
import { demographicsOf } from './demographics.js';
import { blockingKeys, personsOf, personWrites, readMany, readPerson, storeKeys, type WriteFn } from './linker.js';

interface MovedResource {
  readonly type: string;
  readonly id: string;
  /** Paths of the references re-pointed from the source to the target. */
  readonly paths: readonly string[];
}

interface MergeRecord {
  readonly resources: readonly MovedResource[];
  /** The source's person before the merge, and its links then. */
  readonly sourcePerson?: string;
  readonly sourcePersonLinks?: readonly PersonLink[];
  readonly targetPerson?: string;
  /** What the merge changed on the two Patients, to put back. */
  readonly sourceBefore: { readonly active?: boolean; readonly link?: readonly PatientLink[] };
  readonly targetBefore: { readonly link?: readonly PatientLink[] };
}

export interface MergeSummary {
  readonly merge: string;
  readonly source: string;
  readonly target: string;
  readonly moved: number;
}

function replacedBy(p: Patient): string | undefined {
  const ref = p.link?.find((l) => l.type === 'replaced-by')?.other?.reference;
  const m = ref && /^Patient\/([A-Za-z0-9\-.]{1,64})$/.exec(ref);
  return m ? m[1] : undefined;
}

/** Merges still in force for these sources. */
async function activeMerge(q: Queryable, sourceId: string): Promise<{ id: string; target_id: string; moved: MergeRecord } | undefined> {
  const { rows } = await q.query<{ id: string; target_id: string; moved: MergeRecord | string }>(
    'SELECT id, target_id, moved FROM mpi_merge WHERE source_id = $1 AND undone_at IS NULL ORDER BY merged_at DESC LIMIT 1',
    [sourceId],
  );
  const r = rows[0];
  return r ? { id: r.id, target_id: r.target_id, moved: typeof r.moved === 'string' ? (JSON.parse(r.moved) as MergeRecord) : r.moved } : undefined;
}

/** Resources (other than Patients and Persons) that refer to a Patient, current content. */
async function referring(q: Queryable, patientId: string): Promise<Resource[]> {
  const { rows } = await q.query<{ content: string }>(
    `SELECT r.content FROM resource r
      WHERE NOT r.deleted AND r.type NOT IN ('Patient', 'Person')
        AND r.rid IN (SELECT rid FROM sp_reference WHERE target_type = 'Patient' AND target_id = $1)
      ORDER BY r.rid`,
    [patientId],
  );
  return rows.map((r) => JSON.parse(r.content) as Resource);
}

/** How many resources a merge of this source would move (for `preview`). */
export async function countReferring(q: Queryable, patientId: string): Promise<number> {
  return (await referring(q, patientId)).length;
}

/**
 * Merges the retired Patients among `stored` into the Patient their replaced-by link names. Called
 * by the identity hook, after the Patients are stored.
 */
export async function mergeRetired(q: Queryable, stored: readonly Patient[], ctx: RequestContext, write: WriteFn): Promise<MergeSummary[]> {
  const out: MergeSummary[] = [];
  for (const source of stored) {
    const targetId = replacedBy(source);
    if (source.active !== false || !targetId || !source.id) continue;
    if (targetId === source.id) throw new GatewayError('GW_ERR_BUSINESS_RULE', 'A Patient cannot be merged into itself', { expression: 'Patient.link' });
    if (await activeMerge(q, source.id)) continue; // merged already: a repeated A40 moves nothing new
    const target = (await readMany<Patient>(q, 'Patient', [targetId])).get(targetId);
    if (!target) throw new GatewayError('GW_ERR_BUSINESS_RULE', `Patient/${source.id} is replaced by Patient/${targetId}, which does not exist`, { expression: 'Patient.link' });
    if (replacedBy(target)) throw new GatewayError('GW_ERR_BUSINESS_RULE', `Patient/${targetId} is itself merged into another Patient; merge into the surviving one`, { expression: 'Patient.link' });

    const moved: MovedResource[] = [];
    const writes: { method: 'PUT'; type: string; id: string; resource: Resource }[] = [];
    for (const r of await referring(q, source.id)) {
      const paths: string[] = [];
      for (const ref of findReferences(r)) {
        if (ref.value === `Patient/${source.id}`) {
          ref.set(`Patient/${targetId}`);
          paths.push(ref.path);
        }
      }
      if (!paths.length) continue;
      moved.push({ type: r.resourceType, id: r.id as string, paths });
      writes.push({ method: 'PUT', type: r.resourceType, id: r.id as string, resource: r });
    }
    if (writes.length) await write(writes);

    // The source's record joins the target's person (its old MRN still finds the person).
    const persons = await personsOf(q, [source.id, targetId]);
    const sourcePerson = persons.get(source.id);
    const targetPerson = persons.get(targetId);
    const sourcePersonLinks = sourcePerson ? ((await readPerson(q, sourcePerson))?.link ?? []) : undefined;
    if (targetPerson && sourcePerson !== targetPerson) {
      const changed = new Map<string, PersonLink[]>();
      const targetLinks = (await readPerson(q, targetPerson))?.link ?? [];
      changed.set(targetPerson, [...targetLinks, { target: { reference: `Patient/${source.id}` }, assurance: 'level4' }]);
      if (sourcePerson) changed.set(sourcePerson, (sourcePersonLinks ?? []).filter((l) => l.target.reference !== `Patient/${source.id}`));
      await write(await personWrites(q, changed));
    }
    // What the source looked like before this write retired it, to put back on undo.
    const version = Number(source.meta?.versionId ?? 1);
    const priorRow = version > 1 ? await readVersion(q, 'Patient', source.id, version - 1) : undefined;
    const prior = priorRow?.content ? (JSON.parse(priorRow.content) as Patient) : undefined;
    const priorTarget = target;
    const record: MergeRecord = {
      resources: moved,
      sourcePerson,
      sourcePersonLinks,
      targetPerson,
      sourceBefore: { active: prior?.active, link: prior?.link },
      targetBefore: { link: (priorTarget.link ?? []).filter((l) => l.other.reference !== `Patient/${source.id}` || l.type !== 'replaces') },
    };
    const id = randomUUID();
    await q.query('INSERT INTO mpi_merge (id, source_id, target_id, merged_at, moved) VALUES ($1, $2, $3, now(), $4::jsonb)', [id, source.id, targetId, JSON.stringify(record)]);
    await recordAccess(q, ctx, [
      {
        interaction: 'operation',
        operation: '$merge',
        outcome: '0',
        outcomeText: `Patient/${source.id} merged into Patient/${targetId}; ${moved.length} resource(s) re-pointed`,
        resources: [`Patient/${source.id}`, `Patient/${targetId}`, ...moved.map((m) => `${m.type}/${m.id}`)],
        patients: [`Patient/${source.id}`, `Patient/${targetId}`],
      },
    ]);
    out.push({ merge: id, source: source.id, target: targetId, moved: moved.length });
  }
  return out;
}

/**
 * Undoes the merge of `sourceId`: each moved resource gets back the references it had to the
 * source (only those, and only where they still name the target), the two Patients get back
 * their previous active flag and links, and the source returns to its former person.
 */
export async function unmerge(q: Queryable, sourceId: string, ctx: RequestContext, write: WriteFn): Promise<MergeSummary> {
  const merge = await activeMerge(q, sourceId);
  if (!merge) throw new GatewayError('GW_ERR_NOT_FOUND', `Patient/${sourceId} is not merged into another Patient`, { expression: 'source-patient' });
  const targetId = merge.target_id;
  const rec = merge.moved;
  await q.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`mpi-merge:${sourceId}`]);

  const current = await Promise.all(
    [...new Set(rec.resources.map((r) => r.type))].map(async (type) => readMany<Resource>(q, type, rec.resources.filter((r) => r.type === type).map((r) => r.id))),
  );
  const byKey = new Map<string, Resource>();
  for (const m of current) for (const [id, r] of m) byKey.set(`${r.resourceType}/${id}`, r);
  const writes: { method: 'PUT'; type: string; id: string; resource: Resource }[] = [];
  for (const moved of rec.resources) {
    const r = byKey.get(`${moved.type}/${moved.id}`);
    if (!r) continue; // deleted since: nothing to give back
    let changed = false;
    for (const ref of findReferences(r)) {
      if (moved.paths.includes(ref.path) && ref.value === `Patient/${targetId}`) {
        ref.set(`Patient/${sourceId}`);
        changed = true;
      }
    }
    if (changed) writes.push({ method: 'PUT', type: moved.type, id: moved.id, resource: r });
  }
  const patients = await readMany<Patient>(q, 'Patient', [sourceId, targetId]);
  const source = patients.get(sourceId);
  const target = patients.get(targetId);
  if (source) {
    const restored: Patient = { ...source };
    if (rec.sourceBefore.active === undefined) delete restored.active;
    else restored.active = rec.sourceBefore.active;
    if (rec.sourceBefore.link?.length) restored.link = [...rec.sourceBefore.link];
    else delete restored.link;
    writes.push({ method: 'PUT', type: 'Patient', id: sourceId, resource: restored });
  }
  if (target) {
    const restored: Patient = { ...target };
    const links = (target.link ?? []).filter((l) => !(l.type === 'replaces' && l.other.reference === `Patient/${sourceId}`));
    if (links.length) restored.link = links;
    else delete restored.link;
    writes.push({ method: 'PUT', type: 'Patient', id: targetId, resource: restored });
  }
  if (writes.length) await write(writes);
  if (source) await storeKeys(q, sourceId, blockingKeys(demographicsOf(source)));

  // The source's record goes back to the person it was in.
  const persons = await personsOf(q, [sourceId]);
  const now = persons.get(sourceId);
  const changed = new Map<string, PersonLink[]>();
  if (now && now !== rec.sourcePerson) changed.set(now, ((await readPerson(q, now))?.link ?? []).filter((l) => l.target.reference !== `Patient/${sourceId}`));
  if (rec.sourcePerson && now !== rec.sourcePerson) {
    const links = (await readPerson(q, rec.sourcePerson))?.link ?? (rec.sourcePersonLinks ?? []).filter((l) => l.target.reference !== `Patient/${sourceId}`);
    changed.set(rec.sourcePerson, [...links.filter((l) => l.target.reference !== `Patient/${sourceId}`), { target: { reference: `Patient/${sourceId}` }, assurance: 'level4' }]);
  }
  if (changed.size) await write(await personWrites(q, changed));

  await q.query('UPDATE mpi_merge SET undone_at = now() WHERE id = $1', [merge.id]);
  await recordAccess(q, ctx, [
    {
      interaction: 'operation',
      operation: '$unmerge',
      outcome: '0',
      outcomeText: `merge of Patient/${sourceId} into Patient/${targetId} undone; ${writes.length} resource(s) restored`,
      resources: [`Patient/${sourceId}`, `Patient/${targetId}`, ...rec.resources.map((m) => `${m.type}/${m.id}`)],
      patients: [`Patient/${sourceId}`, `Patient/${targetId}`],
    },
  ]);
  return { merge: merge.id, source: sourceId, target: targetId, moved: rec.resources.length };
}
