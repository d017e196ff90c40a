/**
 * Reading reports over HL7 v2: a reading centre whose RIS or ECG system cannot speak FHIR answers
 * a reading request with an ORU^R01. The mapping engine turns the message into its Bundle
 * (mappings/hl7v2/ORU_R01.json); this step then links each report (OBR) that names a reading
 * request to it, as the FHIR `$complete` does:
 *
 * - the request is found by OBR-2 (placer order number) or OBR-3 (filler order number) holding the
 *   reading request's identifier (the ServiceRequest's READING_REQUEST_SYSTEM value, as the
 *   centre's work list shows it), else by the study's accession number in IPC-1, OBR-18 or OBR-3:
 *   the ImagingStudy with that accession and the reading request it is based on;
 * - the DiagnosticReport gets basedOn the reading ServiceRequest (the order the ORC would have
 *   created is left out: the request exists), imagingStudy the study, and the study's patient as
 *   subject (with its results), so that the township sees it on its own patient's record;
 * - in the message's transaction, once the Bundle is stored, the reading Task is completed with the
 *   report as output and the ServiceRequest completed (ReadingService.finish), through the same
 *   write path: the requesting township is notified through its subscriptions.
 *
 * Only the centre the Task is owned by answers it: a report naming another centre's request, or one
 * cancelled or refused, is refused (AR) naming the field. An ORU naming no reading request is
 * stored as it is mapped.
 */
import type { BundleEntry, DiagnosticReport, ImagingStudy, Reference, Resource, ServiceRequest, Task } from '@medplum/fhirtypes';
import type { MapFn, Mapped, MappingContext } from '../ingest/index.js';
import { valueAt, type Hl7Location, type Hl7Message, type Hl7Segment } from '../ingest/hl7v2/index.js';
import { HL7_ERROR, MappingError, searchEscape, triggerOf } from '../ingest/hl7v2/mapping/index.js';
import { findReferences } from '../fhir/index.js';
import { USCC_SYSTEM } from '../fhir/systems.js';
import type { Queryable, StoredRow } from '../store/index.js';
import { findMatches } from '../store/search/index.js';
import { READING_REQUEST_SYSTEM, ReadingService, idOf, isReadingTask, type ReadingLink } from './service.js';

export interface ReadingHl7Deps {
  readonly db: Queryable;
}

/** Most studies with one accession number looked at. */
const MAX_MATCHES = 20;
/** Task states a report may still answer (a corrected report answers a completed one again). */
const ANSWERABLE: ReadonlySet<Task['status']> = new Set(['requested', 'accepted', 'in-progress', 'completed']);

const at = (segment: Hl7Segment, field?: number): Hl7Location => ({ segment: segment.name, position: segment.position, ...(field !== undefined ? { field } : {}) });

function parse<T>(row: StoredRow): T & { id: string; meta?: { versionId?: string } } {
  return JSON.parse(row.content as string) as T & { id: string; meta?: { versionId?: string } };
}

/** One OBR's key to a reading request: a value and the field it came from. */
interface Key {
  readonly value: string;
  readonly location: Hl7Location;
}

/**
 * The reading request an OBR names, if any: by the request's identifier (unique: a request for
 * another centre is found, and refused by taskOf), else by accession number (one institution's
 * numbering: only requests to the sender, `me`, are looked at).
 */
async function findRequest(db: Queryable, obr: Hl7Segment, ipc: Hl7Segment | undefined, me: string | undefined): Promise<{ sr: ServiceRequest & { id: string }; key: Key } | undefined> {
  const orders: Key[] = [2, 3].map((f) => ({ value: valueAt(obr, f).trim(), location: at(obr, f) })).filter((k) => k.value);
  for (const key of orders) {
    const [row] = await findMatches(db, 'ServiceRequest', { identifier: `${READING_REQUEST_SYSTEM}|${searchEscape(key.value)}` }, 1);
    if (row) return { sr: parse<ServiceRequest>(row), key };
  }
  const accessions: Key[] = [
    ...(ipc ? [{ value: valueAt(ipc, 1).trim(), location: at(ipc, 1) }] : []),
    { value: valueAt(obr, 18).trim(), location: at(obr, 18) },
    { value: valueAt(obr, 3).trim(), location: at(obr, 3) },
  ].filter((k) => k.value);
  for (const key of accessions) {
    const studies = (await findMatches(db, 'ImagingStudy', { identifier: searchEscape(key.value) }, MAX_MATCHES)).map((r) => parse<ImagingStudy>(r));
    const ids = studies.flatMap((s) => (s.basedOn ?? []).flatMap((b) => idOf(b, 'ServiceRequest') ?? []));
    if (ids.length === 0) continue;
    const requests = (await findMatches(db, 'ServiceRequest', { _id: ids.join(','), identifier: `${READING_REQUEST_SYSTEM}|` }, MAX_MATCHES))
      .map((r) => parse<ServiceRequest>(r))
      .filter((sr) => me !== undefined && sr.performer?.[0]?.reference === me);
    // The newest request of the study (a study read again is sent again).
    const sr = requests.sort((a, b) => (a.authoredOn ?? '').localeCompare(b.authoredOn ?? '')).at(-1);
    if (sr) return { sr, key };
  }
  return undefined;
}

/** The Task of a reading request, checked to be the sender's (`me`) to answer. */
async function taskOf(db: Queryable, sr: ServiceRequest & { id: string }, key: Key, me: string | undefined): Promise<Task & { id: string; meta?: { versionId?: string } }> {
  const tasks = (await findMatches(db, 'Task', { focus: `ServiceRequest/${sr.id}` }, MAX_MATCHES)).map((r) => parse<Task>(r)).filter(isReadingTask);
  const task = tasks[0];
  if (!task) throw new MappingError(HL7_ERROR.APPLICATION_INTERNAL_ERROR, key.location, `the reading request "${key.value}" has no reading Task`);
  if (me === undefined || task.owner?.reference !== me) {
    throw new MappingError(HL7_ERROR.UNKNOWN_KEY_IDENTIFIER, key.location, `the reading request "${key.value}" is for ${task.owner?.display ?? task.owner?.reference ?? 'another centre'}; only the reading centre it names reports on it`);
  }
  if (!ANSWERABLE.has(task.status)) throw new MappingError(HL7_ERROR.APPLICATION_INTERNAL_ERROR, key.location, `the reading request "${key.value}" is ${task.status}; it takes no report`);
  return task;
}

/** Points every reference to `from` (an entry's fullUrl) at `to`. */
function retarget(resource: Resource, from: string, to: string): void {
  for (const ref of findReferences(resource)) if (ref.value === from) ref.set(to);
}

async function linkReports(msg: Hl7Message, ctx: MappingContext, mapped: Mapped, deps: ReadingHl7Deps): Promise<Mapped> {
  const entries: BundleEntry[] = structuredClone(mapped.bundle.entry ?? []);
  // The mapping makes one DiagnosticReport per OBR with OBR-4, in message order.
  const obrs = msg.segments.filter((s) => s.name === 'OBR' && valueAt(s, 4).trim());
  const reports = entries.flatMap((e, i) => (e.resource?.resourceType === 'DiagnosticReport' ? [i] : []));
  const links: { index: number; link: ReadingLink }[] = [];
  const dropped = new Set<number>();
  const [org] = await findMatches(deps.db, 'Organization', { identifier: `${USCC_SYSTEM}|${ctx.institution}` }, 1);
  const me = org ? `Organization/${org.id}` : undefined;
  for (const [k, obr] of obrs.entries()) {
    const index = reports[k];
    if (index === undefined) break;
    const ipc = msg.segments.find((s) => s.name === 'IPC' && s.position > obr.position && !msg.segments.some((o) => o.name === 'OBR' && o.position > obr.position && o.position < s.position));
    const found = await findRequest(deps.db, obr, ipc, me);
    if (!found) continue;
    const task = await taskOf(deps.db, found.sr, found.key, me);
    const study = task.input?.find((i) => i.type?.text === 'ImagingStudy')?.valueReference as Reference<ImagingStudy> | undefined;
    const report = entries[index].resource as DiagnosticReport;
    const subject = task.for as DiagnosticReport['subject'];
    // The order the ORC mapped to is the reading request itself: its entry goes, references to it follow.
    for (const ref of report.basedOn ?? []) {
      const order = entries.findIndex((e) => e.fullUrl === ref.reference && e.resource?.resourceType === 'ServiceRequest');
      if (order >= 0) {
        dropped.add(order);
        for (const e of entries) if (e.resource) retarget(e.resource, ref.reference as string, `ServiceRequest/${found.sr.id}`);
      }
    }
    report.basedOn = [{ reference: `ServiceRequest/${found.sr.id}` }];
    if (study) report.imagingStudy = [study];
    if (!report.category?.length && found.sr.category) report.category = found.sr.category;
    const patient = report.subject?.reference;
    if (subject) {
      report.subject = subject;
      // Its results are about the same patient.
      const results = new Set((report.result ?? []).map((r) => r.reference));
      for (const e of entries) {
        if (e.fullUrl && results.has(e.fullUrl) && e.resource?.resourceType === 'Observation' && e.resource.subject?.reference === patient) e.resource.subject = subject;
      }
    }
    links.push({ index, link: { task, sr: found.sr } });
  }
  if (links.length === 0) return mapped;
  const kept = entries.flatMap((e, i) => (dropped.has(i) ? [] : [{ e, i }]));
  const position = new Map(kept.map(({ i }, n) => [i, n]));
  return {
    bundle: { ...mapped.bundle, entry: kept.map(({ e }) => e) },
    // Refusals name entries of the Bundle as sent to the write path: back to the mapped indexes.
    locate: mapped.locate
      ? (expression) => {
          const m = /^Bundle\.entry\[(\d+)\](.*)$/.exec(expression);
          const original = m ? kept[Number(m[1])]?.i : undefined;
          return mapped.locate?.(original !== undefined && m ? `Bundle.entry[${original}]${m[2]}` : expression);
        }
      : undefined,
    afterStore: async (repo, stored, writeCtx) => {
      for (const { index, link } of links) {
        const location = stored.entry?.[position.get(index) as number]?.response?.location ?? '';
        await ReadingService.finish(repo, link, location.replace(/\/_history\/.*$/, ''), writeCtx);
      }
    },
  };
}

/** Links ORU^R01 reports to the reading requests they answer; every other message passes through `next`. */
export function readingMap(next: MapFn, deps: ReadingHl7Deps): MapFn {
  return async (message, ctx) => {
    const mapped = await next(message, ctx);
    const { type, event } = triggerOf(message);
    return type === 'ORU' && event === 'R01' ? linkReports(message, ctx, mapped, deps) : mapped;
  };
}
