/**
 * The MPI as the write path sees it: an IdentityHook that flags Patients before they are stored
 * and links them (or removes deleted ones from their person) after, in the same transaction.
 */
import type { Patient, Resource } from '@medplum/fhirtypes';
import type { IdentityHook } from '../fhir/write-path.js';
import { flagPatient, linkPatients, unlinkDeleted, type WriteFn } from './linker.js';
import { mergeRetired } from './merge.js';
import type { Thresholds } from './score.js';

export function createIdentityHook(thresholds: Thresholds): IdentityHook {
  return {
    prepare(patient: Resource) {
      flagPatient(patient as Patient);
    },
    async link(q, changed, ctx, write) {
      const w = write as unknown as WriteFn;
      if (changed.deleted.length) await unlinkDeleted(q, changed.deleted, w);
      const stored = changed.stored.filter((r): r is Patient => r.resourceType === 'Patient');
      if (!stored.length) return;
      // A Patient retired with a replaced-by link (ADT^A40, $merge, …) is merged first, then all are linked.
      await mergeRetired(q, stored, ctx, w);
      await linkPatients(q, stored, ctx, w, { thresholds });
    },
  };
}
