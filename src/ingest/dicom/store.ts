/**
 * Stores DICOM records: in one database transaction, each study's stored ImagingStudy is read
 * (under a lock on its UID, so two posts of the same study merge instead of overwriting each
 * other), the ServiceRequest of its accession number is looked up, and the Bundle built by
 * imaging-study.ts goes through processBundle, the one write path.
 */
import type { Bundle, ImagingStudy, ServiceRequest } from '@medplum/fhirtypes';
import { processBundle, type FhirServices, type RequestContext } from '../../fhir/index.js';
import { joinTransaction, type Db } from '../../store/index.js';
import type { DicomRecord } from './attributes.js';
import { accessionSystem, byStudy, dicomBundle, DICOM_UID_SYSTEM, type StudyInput } from './imaging-study.js';

export interface DicomStoreDeps {
  readonly db: Db;
  readonly fhir: Pick<FhirServices, 'repository' | 'validator'>;
}

function first<T>(bundle: Bundle): T | undefined {
  return bundle.entry?.find((e) => e.search?.mode !== 'include')?.resource as T | undefined;
}

/** Writes the records for the context's institution; returns the transaction-response Bundle. */
export async function storeDicom(deps: DicomStoreDeps, records: readonly DicomRecord[], ctx: RequestContext & { institution: string }, retrieveUrl?: string): Promise<Bundle> {
  const { db, fhir } = deps;
  const groups = byStudy(records);
  return db.tx(async (q) => {
    // The full repository: the study's Patient is linked (MPI) and subscribers hear of the writes.
    const repo = fhir.repository.on(joinTransaction(db, q));
    const studies: StudyInput[] = [];
    // Locks in UID order: two posts naming the same studies cannot deadlock.
    for (const studyUid of [...groups.keys()].sort()) {
      await q.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`ImagingStudy|${studyUid}`]);
      const found = await repo.search('ImagingStudy', { identifier: `${DICOM_UID_SYSTEM}|urn:oid:${studyUid}` }, ctx, q);
      const existing = first<ImagingStudy>(found);
      const recs = groups.get(studyUid) as DicomRecord[];
      const accession = recs.find((r) => r.accessionNumber)?.accessionNumber;
      let basedOn: StudyInput['basedOn'];
      if (accession) {
        const orders = await repo.search('ServiceRequest', { identifier: `${accessionSystem(ctx.institution)}|${accession}` }, ctx, q);
        const order = first<ServiceRequest>(orders);
        if (order?.id) basedOn = { reference: `ServiceRequest/${order.id}` };
      }
      studies.push({ studyUid, records: recs, ...(existing ? { existing } : {}), ...(basedOn ? { basedOn } : {}) });
    }
    const bundle = dicomBundle({ institution: ctx.institution, studies, ...(retrieveUrl ? { retrieveUrl } : {}) });
    return processBundle(repo, bundle, ctx, { minimal: true });
  });
}
