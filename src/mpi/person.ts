/**
 * The golden record: one `Person` per resident, whose `link`s name the local Patients of every
 * member institution that are this person. Why Person and not a master Patient with
 * `Patient.link` `seealso`/`refer`: linking then never writes a new version of a Patient that a
 * member institution owns (its HIS keeps its version numbers and If-Match), a wrong link is undone
 * by editing one resource the gateway owns, and the golden record cannot be mistaken for a
 * clinical record that data could be filed against.
 *
 * The Person carries every identifier of its records (ID card, health card, each local MRN), so
 * `Person?identifier=<any local MRN>` finds the person, and the best demographics among them.
 */
import type { Coding, Identifier, Patient, Person, PersonLink } from '@medplum/fhirtypes';
import { FHIR_BASE, ID_CARD_SYSTEM } from '../fhir/systems.js';
import { demographicsOf } from './demographics.js';

/** Tags resources the MPI maintains (Persons, review Tasks). */
export const MPI_TAG_SYSTEM = `${FHIR_BASE}/CodeSystem/mpi`;
export const MPI_TAG: Coding = Object.freeze({ system: MPI_TAG_SYSTEM, code: 'managed', display: 'Maintained by the master patient index' }) as Coding;
/** Flags on a Patient the MPI found problems with (an ID card number that conflicts with the record). */
export const MPI_FLAG_SYSTEM = `${FHIR_BASE}/CodeSystem/mpi-flag`;
/** Task.code system of the MPI review queue. */
export const MPI_TASK_SYSTEM = `${FHIR_BASE}/CodeSystem/mpi-task`;

/** How good a record is as the source of the golden demographics: trusted ID card first, then completeness. */
function quality(p: Patient): number {
  const d = demographicsOf(p);
  return (d.idCard ? 100 : 0) + (d.han ? 10 : 0) + (d.birthDate ? 5 : 0) + (d.sex ? 2 : 0) + (d.phones.length ? 2 : 0) + (d.address ? 1 : 0);
}

function idKey(i: Identifier): string {
  return `${i.system ?? ''}|${i.value ?? ''}`;
}

/** Builds the Person from its links and the current content of the linked Patients. */
export function personContent(personId: string, links: readonly PersonLink[], patients: ReadonlyMap<string, Patient>): Person {
  const linked = links
    .map((l) => patients.get((l.target.reference ?? '').replace(/^Patient\//, '')))
    .filter((p): p is Patient => !!p)
    .sort((a, b) => quality(b) - quality(a));
  const best = linked[0];
  const identifiers = new Map<string, Identifier>();
  for (const p of linked) {
    const d = demographicsOf(p);
    for (const i of p.identifier ?? []) {
      if (!i.system || !i.value) continue;
      // ID card numbers only when trusted, and always in their 18-character form.
      if (i.system === ID_CARD_SYSTEM) {
        if (d.idCard) identifiers.set(idKey({ system: ID_CARD_SYSTEM, value: d.idCard }), { use: 'official', system: ID_CARD_SYSTEM, value: d.idCard });
        continue;
      }
      const { system, value, type } = i;
      identifiers.set(idKey(i), { system, value, ...(type ? { type } : {}) });
    }
  }
  const names = new Map<string, NonNullable<Person['name']>[number]>();
  for (const p of linked) for (const n of p.name ?? []) names.set(JSON.stringify([n.family, n.given, n.text]), { ...(n.text ? { text: n.text } : {}), ...(n.family ? { family: n.family } : {}), ...(n.given ? { given: n.given } : {}) });
  return {
    resourceType: 'Person',
    id: personId,
    meta: { tag: [MPI_TAG] },
    active: true,
    ...(identifiers.size ? { identifier: [...identifiers.values()] } : {}),
    ...(names.size ? { name: [...names.values()] } : {}),
    ...(best?.gender ? { gender: best.gender } : {}),
    ...(best?.birthDate ? { birthDate: best.birthDate } : {}),
    ...(best?.telecom ? { telecom: best.telecom } : {}),
    ...(best?.address ? { address: best.address } : {}),
    link: links.map((l) => ({ target: { reference: l.target.reference }, ...(l.assurance ? { assurance: l.assurance } : {}) })),
  };
}
