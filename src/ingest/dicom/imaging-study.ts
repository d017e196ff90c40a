/**
 * DICOM records → FHIR: one ImagingStudy per StudyInstanceUID, merged with what an earlier post
 * stored (instances of one study often arrive in several posts), its Patient (keyed on the
 * posting institution's MRN system) and the PACS's WADO-RS Endpoint. Pure: the caller reads the
 * stored studies and writes the transaction Bundle this builds.
 */
import type { BundleEntry, Coding, Endpoint, HumanName, ImagingStudy, ImagingStudySeries, ImagingStudySeriesInstance, Patient, Reference, ServiceRequest } from '@medplum/fhirtypes';
import { createHash } from 'node:crypto';
import { GatewayError } from '../../errors.js';
import { FHIR_BASE, INSTITUTION_TAG_SYSTEM, mrnSystem } from '../../fhir/systems.js';
import { personNameText, tagLabel, TAGS, type DicomRecord } from './attributes.js';

/** ImagingStudy.identifier system for a DICOM UID (value `urn:oid:<uid>`), as the FHIR spec names it. */
export const DICOM_UID_SYSTEM = 'urn:dicom:uid';
export const DICOM_MODALITY_SYSTEM = 'http://dicom.nema.org/resources/ontology/DCM';
export const SOP_CLASS_SYSTEM = 'urn:ietf:rfc:3986';
const V2_0203 = 'http://terminology.hl7.org/CodeSystem/v2-0203';
/** Identifier system of the WADO-RS endpoints, value = the service's base URL. */
export const ENDPOINT_SYSTEM = `${FHIR_BASE}/sid/endpoint`;
/** Body part examined (0018,0015) as the modality wrote it (a CS of PS3.16 Annex L). */
export const BODY_PART_SYSTEM = `${FHIR_BASE}/CodeSystem/dicom-body-part`;
const DEFAULT_UTC_OFFSET = '+08:00';

/** Accession numbers (0008,0050) of one institution's RIS. */
export function accessionSystem(institution: string): string {
  return `${FHIR_BASE}/sid/accession/${encodeURIComponent(institution)}`;
}

export function studyIdentifier(studyUid: string): { system: string; value: string } {
  return { system: DICOM_UID_SYSTEM, value: `urn:oid:${studyUid}` };
}

/** The search that finds the ImagingStudy of a StudyInstanceUID. */
export function studyCondition(studyUid: string): string {
  return `identifier=${encodeURIComponent(`${DICOM_UID_SYSTEM}|urn:oid:${studyUid}`)}`;
}

function uuidOf(seed: string): string {
  const h = createHash('sha256').update(seed).digest('hex');
  return `urn:uuid:${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function date(da: string | undefined, tag: string): string | undefined {
  if (!da) return undefined;
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(da);
  if (!m) throw new GatewayError('GW_ERR_BAD_REQUEST', `${tagLabel(tag)} "${da.slice(0, 20)}" is not a date (YYYYMMDD)`, { expression: tagLabel(tag) });
  return `${m[1]}-${m[2]}-${m[3]}`;
}

/** StudyDate + StudyTime (+ TimezoneOffsetFromUTC, else the community's +08:00) → FHIR dateTime. */
function started(r: DicomRecord): string | undefined {
  const day = date(r.studyDate, TAGS.StudyDate);
  if (!day || !r.studyTime) return day;
  const t = /^(\d{2})(\d{2})?(\d{2})?(?:\.(\d{1,6}))?$/.exec(r.studyTime);
  if (!t) throw new GatewayError('GW_ERR_BAD_REQUEST', `${tagLabel(TAGS.StudyTime)} "${r.studyTime.slice(0, 20)}" is not a time (HHMMSS.FFFFFF)`, { expression: tagLabel(TAGS.StudyTime) });
  const tz = /^([+-])(\d{2})(\d{2})$/.exec(r.timezoneOffset ?? '');
  const offset = tz ? `${tz[1]}${tz[2]}:${tz[3]}` : DEFAULT_UTC_OFFSET;
  const frac = t[4] ? `.${t[4]}` : '';
  return `${day}T${t[1]}:${t[2] ?? '00'}:${t[3] ?? '00'}${frac}${offset}`;
}

function humanName(pn: string | undefined): HumanName[] | undefined {
  if (!pn) return undefined;
  const [family, given, middle] = pn.split('^').map((s) => s.trim());
  const name: HumanName = { text: personNameText(pn) };
  if (family) name.family = family;
  const givens = [given, middle].filter((s): s is string => !!s);
  if (givens.length) name.given = givens;
  return name.text ? [name] : undefined;
}

const GENDER: Record<string, Patient['gender']> = { M: 'male', F: 'female', O: 'other' };

/** WADO-RS base URL of a RetrieveURL (`…/studies/<uid>[/series/…]` → `…`). */
export function wadoBase(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new GatewayError('GW_ERR_BAD_REQUEST', `${tagLabel(TAGS.RetrieveURL)} "${url.slice(0, 200)}" is not a URL`, { expression: tagLabel(TAGS.RetrieveURL) });
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') {
    throw new GatewayError('GW_ERR_BAD_REQUEST', `${tagLabel(TAGS.RetrieveURL)} must be an http(s) URL`, { expression: tagLabel(TAGS.RetrieveURL) });
  }
  const i = u.pathname.indexOf('/studies');
  u.pathname = i === -1 ? u.pathname.replace(/\/+$/, '') : u.pathname.slice(0, i);
  u.search = '';
  u.hash = '';
  return u.toString().replace(/\/+$/, '');
}

export interface StudyInput {
  readonly studyUid: string;
  readonly records: readonly DicomRecord[];
  /** The ImagingStudy stored for this UID, if any. */
  readonly existing?: ImagingStudy;
  /** ServiceRequest with the study's accession number, if one is stored. */
  readonly basedOn?: Reference<ServiceRequest>;
}

export interface DicomBundleInput {
  readonly institution: string;
  readonly studies: readonly StudyInput[];
  /** WADO-RS base URL given with the post (Part 10 files carry no RetrieveURL). */
  readonly retrieveUrl?: string;
}

/** Groups records by StudyInstanceUID, in the order they came. */
export function byStudy(records: readonly DicomRecord[]): Map<string, DicomRecord[]> {
  const m = new Map<string, DicomRecord[]>();
  for (const r of records) m.set(r.studyUid, [...(m.get(r.studyUid) ?? []), r]);
  return m;
}

function firstOf<K extends keyof DicomRecord>(records: readonly DicomRecord[], k: K): DicomRecord[K] | undefined {
  for (const r of records) if (r[k] !== undefined) return r[k];
  return undefined;
}

function mergeSeries(existing: readonly ImagingStudySeries[], records: readonly DicomRecord[], endpoint: Reference<Endpoint> | undefined): ImagingStudySeries[] {
  const series = new Map<string, ImagingStudySeries>(existing.map((s) => [s.uid, { ...s, instance: [...(s.instance ?? [])] }]));
  for (const r of records) {
    if (!r.seriesUid) continue;
    const prev = series.get(r.seriesUid);
    const modality: Coding = { system: DICOM_MODALITY_SYSTEM, code: r.modality as string };
    const s: ImagingStudySeries = {
      ...prev,
      uid: r.seriesUid,
      modality: prev?.modality ?? modality,
      ...(r.seriesNumber !== undefined ? { number: r.seriesNumber } : {}),
      ...(r.seriesDescription ? { description: r.seriesDescription } : {}),
      ...(r.bodyPart ? { bodySite: { system: BODY_PART_SYSTEM, code: r.bodyPart, display: r.bodyPart } } : {}),
      ...(endpoint && !prev?.endpoint ? { endpoint: [endpoint] } : {}),
      instance: [...(prev?.instance ?? [])],
    };
    if (r.modality && prev?.modality?.code && prev.modality.code !== r.modality) {
      throw new GatewayError('GW_ERR_CONFLICT', `Series ${r.seriesUid} is stored with modality ${prev.modality.code}, this instance says ${r.modality}`, { expression: tagLabel(TAGS.Modality) });
    }
    if (r.sopInstanceUid) {
      const instance: ImagingStudySeriesInstance = {
        uid: r.sopInstanceUid,
        sopClass: { system: SOP_CLASS_SYSTEM, code: `urn:oid:${r.sopClassUid as string}` },
        ...(r.instanceNumber !== undefined ? { number: r.instanceNumber } : {}),
      };
      const list = s.instance as ImagingStudySeriesInstance[];
      const at = list.findIndex((x) => x.uid === instance.uid);
      if (at === -1) list.push(instance);
      else list[at] = instance;
    }
    s.numberOfInstances = s.instance?.length ?? 0;
    if (s.instance?.length === 0) delete s.instance;
    series.set(r.seriesUid, s);
  }
  return [...series.values()];
}

/** One ImagingStudy: the stored one with this post's series, instances and study attributes merged in. */
export function buildStudy(input: StudyInput, institution: string, subject: Reference<Patient>, endpoint: Reference<Endpoint> | undefined): ImagingStudy {
  const { records, existing } = input;
  const patientId = firstOf(records, 'patientId');
  for (const r of records) {
    if (r.patientId && r.patientId !== patientId) {
      throw new GatewayError('GW_ERR_CONFLICT', `Study ${input.studyUid} names two patients (${patientId}, ${r.patientId})`, { expression: tagLabel(TAGS.PatientID) });
    }
  }
  const series = mergeSeries(existing?.series ?? [], records, endpoint);
  const instanceCount = series.reduce((n, s) => n + (s.numberOfInstances ?? 0), 0);
  const declared = records.filter((r) => !r.seriesUid);
  const numberOfSeries = Math.max(existing?.numberOfSeries ?? 0, series.length, ...declared.map((r) => r.numberOfSeries ?? 0));
  const numberOfInstances = Math.max(existing?.numberOfInstances ?? 0, instanceCount, ...declared.map((r) => r.numberOfInstances ?? 0));
  const modalities = new Map<string, Coding>();
  for (const c of existing?.modality ?? []) if (c.code) modalities.set(c.code, c);
  for (const s of series) if (s.modality.code) modalities.set(s.modality.code, s.modality);
  for (const r of records) for (const m of r.modalitiesInStudy ?? []) modalities.set(m, { system: DICOM_MODALITY_SYSTEM, code: m });

  const identifiers = [...(existing?.identifier ?? [{ ...studyIdentifier(input.studyUid) }])];
  const accession = firstOf(records, 'accessionNumber');
  if (accession && !identifiers.some((i) => i.type?.coding?.some((c) => c.code === 'ACSN') && i.value === accession)) {
    identifiers.push({ type: { coding: [{ system: V2_0203, code: 'ACSN' }] }, system: accessionSystem(institution), value: accession });
  }
  const start = started(records.find((r) => r.studyDate) ?? records[0]);
  const description = firstOf(records, 'studyDescription');
  const referrer = firstOf(records, 'referringPhysician');
  const referrerText = referrer ? personNameText(referrer) : undefined;
  const basedOn = [...(existing?.basedOn ?? [])];
  if (input.basedOn?.reference && !basedOn.some((b) => b.reference === input.basedOn?.reference)) basedOn.push(input.basedOn);
  const endpoints = [...(existing?.endpoint ?? [])];
  if (endpoint && !endpoints.some((e) => e.reference === endpoint.reference)) endpoints.push(endpoint);

  const study: ImagingStudy = {
    ...existing,
    resourceType: 'ImagingStudy',
    meta: { tag: [{ system: INSTITUTION_TAG_SYSTEM, code: institution }] },
    identifier: identifiers,
    status: existing?.status ?? 'available',
    subject,
    ...(modalities.size ? { modality: [...modalities.values()] } : {}),
    ...(start ? { started: start } : {}),
    ...(basedOn.length ? { basedOn } : {}),
    ...(referrerText ? { referrer: { display: referrerText } } : {}),
    ...(endpoints.length ? { endpoint: endpoints } : {}),
    numberOfSeries,
    numberOfInstances,
    ...(description ? { description } : {}),
    ...(series.length ? { series } : {}),
  };
  delete (study as { id?: string }).id;
  return study;
}

function patientOf(records: readonly DicomRecord[], institution: string): Patient {
  const r = records.find((x) => x.patientId) as DicomRecord;
  const birthDate = date(firstOf(records, 'birthDate'), TAGS.PatientBirthDate);
  const name = humanName(firstOf(records, 'patientName'));
  const gender = GENDER[firstOf(records, 'sex') ?? ''];
  return {
    resourceType: 'Patient',
    meta: { tag: [{ system: INSTITUTION_TAG_SYSTEM, code: institution }] },
    identifier: [{ type: { coding: [{ system: V2_0203, code: 'MR' }] }, system: mrnSystem(institution), value: r.patientId as string }],
    ...(name ? { name } : {}),
    ...(gender ? { gender } : {}),
    ...(birthDate ? { birthDate } : {}),
  };
}

/**
 * The transaction Bundle of one post: each patient created if its MRN is new (an existing
 * record is left as the HIS keeps it), the WADO-RS Endpoint created once per base URL, and each
 * study written by a conditional update on its StudyInstanceUID so a resend changes nothing.
 */
export function dicomBundle(input: DicomBundleInput): { resourceType: 'Bundle'; type: 'transaction'; entry: BundleEntry[] } {
  const { institution } = input;
  const entry: BundleEntry[] = [];
  const endpoints = new Map<string, string>();
  const endpointRef = (base: string): Reference<Endpoint> => {
    let fullUrl = endpoints.get(base);
    if (!fullUrl) {
      fullUrl = uuidOf(`endpoint|${base}`);
      endpoints.set(base, fullUrl);
      const resource: Endpoint = {
        resourceType: 'Endpoint',
        meta: { tag: [{ system: INSTITUTION_TAG_SYSTEM, code: institution }] },
        identifier: [{ system: ENDPOINT_SYSTEM, value: base }],
        status: 'active',
        connectionType: { system: 'http://terminology.hl7.org/CodeSystem/endpoint-connection-type', code: 'dicom-wado-rs' },
        name: `WADO-RS ${base}`,
        payloadType: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/endpoint-payload-type', code: 'DICOM' }], text: 'DICOM' }],
        payloadMimeType: ['application/dicom'],
        address: base,
      };
      entry.push({ fullUrl, resource, request: { method: 'POST', url: 'Endpoint', ifNoneExist: `identifier=${encodeURIComponent(`${ENDPOINT_SYSTEM}|${base}`)}` } });
    }
    return { reference: fullUrl };
  };
  const patients = new Map<string, string>();
  for (const s of input.studies) {
    const patientId = firstOf(s.records, 'patientId');
    let subject: Reference<Patient>;
    if (patientId) {
      let fullUrl = patients.get(patientId);
      if (!fullUrl) {
        fullUrl = uuidOf(`patient|${institution}|${patientId}`);
        patients.set(patientId, fullUrl);
        entry.push({
          fullUrl,
          resource: patientOf(s.records, institution),
          request: { method: 'POST', url: 'Patient', ifNoneExist: `identifier=${encodeURIComponent(`${mrnSystem(institution)}|${patientId}`)}` },
        });
      }
      subject = { reference: fullUrl };
    } else if (s.existing?.subject) {
      subject = s.existing.subject as Reference<Patient>;
    } else {
      throw new GatewayError('GW_ERR_BUSINESS_RULE', `Study ${s.studyUid}: ${tagLabel(TAGS.PatientID)} is missing or empty; a study needs its patient`, { expression: tagLabel(TAGS.PatientID) });
    }
    const retrieve = firstOf(s.records, 'retrieveUrl') ?? input.retrieveUrl;
    const endpoint = retrieve ? endpointRef(wadoBase(retrieve)) : undefined;
    entry.push({ fullUrl: uuidOf(`study|${s.studyUid}`), resource: buildStudy(s, institution, subject, endpoint), request: { method: 'PUT', url: `ImagingStudy?${studyCondition(s.studyUid)}` } });
  }
  return { resourceType: 'Bundle', type: 'transaction', entry };
}
