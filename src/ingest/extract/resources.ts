/**
 * Checked extract rows → FHIR resources of the posting institution, each written by a conditional
 * update on its business identifier (a reload of the same extract changes nothing), with the
 * patient created if its MRN is new. Pure.
 */
import type { BundleEntry, Coding, Condition, Encounter, MedicationRequest, Observation, Patient, Resource } from '@medplum/fhirtypes';
import { FHIR_BASE, ID_CARD_SYSTEM, INSTITUTION_TAG_SYSTEM, mrnSystem } from '../../fhir/systems.js';
import type { Row } from './mappings.js';

export interface RowContext {
  readonly institution: string;
  /** Local coding → standard codings (terminology), e.g. a lab's item code → LOINC. */
  readonly translate?: (coding: Coding) => Coding[];
}

const V2_0203 = 'http://terminology.hl7.org/CodeSystem/v2-0203';
export const ICD10_SYSTEM = 'http://hl7.org/fhir/sid/icd-10';

/** Business identifier systems of extract rows: `${FHIR_BASE}/sid/<kind>/<institution>`. */
export function extractSystem(kind: string, institution: string): string {
  return `${FHIR_BASE}/sid/${kind}/${encodeURIComponent(institution)}`;
}

/** Local code system of one institution's extract column (e.g. lab item codes). */
export function localSystem(institution: string, domain: string): string {
  return `${FHIR_BASE}/CodeSystem/local/${institution}/${domain}`;
}

const s = (row: Row, k: string) => (row[k] === undefined ? undefined : String(row[k]));
const n = (row: Row, k: string) => (typeof row[k] === 'number' ? row[k] : undefined);
const tag = (institution: string) => ({ tag: [{ system: INSTITUTION_TAG_SYSTEM, code: institution }] });
/** A token search on system|value, with FHIR search escapes for `\\ | , $` in the value (composite keys hold `|`). */
const condition = (system: string, value: string) => `identifier=${encodeURIComponent(`${system}|${value.replace(/[\\|,$]/g, (c) => `\\${c}`)}`)}`;

export interface RowEntries {
  /** The patient entry (conditional create), shared by the rows of one batch with the same MRN. */
  readonly patient?: { mrn: string; entry: BundleEntry };
  readonly entry: BundleEntry;
}

function patientEntry(row: Row, ctx: RowContext, fullUrl: string): { mrn: string; entry: BundleEntry } {
  const mrn = s(row, 'mrn') as string;
  const name = s(row, 'patient_name');
  const resource: Patient = {
    resourceType: 'Patient',
    meta: tag(ctx.institution),
    identifier: [{ type: { coding: [{ system: V2_0203, code: 'MR' }] }, system: mrnSystem(ctx.institution), value: mrn }],
    ...(name ? { name: [{ text: name }] } : {}),
  };
  return { mrn, entry: { fullUrl, resource, request: { method: 'POST', url: 'Patient', ifNoneExist: condition(mrnSystem(ctx.institution), mrn) } } };
}

function put(resource: Resource, system: string, value: string): BundleEntry {
  (resource as { identifier?: unknown[] }).identifier = [{ system, value }, ...(((resource as { identifier?: unknown[] }).identifier ?? []) as unknown[])];
  return { resource, request: { method: 'PUT', url: `${resource.resourceType}?${condition(system, value)}` } };
}

const GENDER: Record<string, Patient['gender']> = { M: 'male', F: 'female', O: 'other', U: 'unknown' };
const CLASS: Record<string, Coding> = {
  outpatient: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB', display: 'ambulatory' },
  inpatient: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'IMP', display: 'inpatient encounter' },
  emergency: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'EMER', display: 'emergency' },
};
const FLAG: Record<string, string> = { N: 'N', H: 'H', L: 'L', HH: 'HH', LL: 'LL', A: 'A' };

/** The entries of one row; `patientUrl` is the fullUrl its patient entry takes (or already took). */
export function rowEntries(kind: string, row: Row, ctx: RowContext, patientUrl: string): RowEntries {
  const inst = ctx.institution;
  if (kind === 'patients') {
    const idCard = s(row, 'id_card');
    const gender = GENDER[s(row, 'gender') ?? ''];
    const resource: Patient = {
      resourceType: 'Patient',
      meta: tag(inst),
      identifier: [
        { type: { coding: [{ system: V2_0203, code: 'MR' }] }, system: mrnSystem(inst), value: s(row, 'mrn') as string },
        ...(idCard ? [{ type: { coding: [{ system: V2_0203, code: 'NNCHN' }] }, system: ID_CARD_SYSTEM, value: idCard }] : []),
      ],
      name: [{ text: s(row, 'name') }],
      ...(gender ? { gender } : {}),
      ...(row.birth_date ? { birthDate: s(row, 'birth_date') } : {}),
      ...(row.phone ? { telecom: [{ system: 'phone', value: s(row, 'phone') }] } : {}),
      ...(row.address ? { address: [{ text: s(row, 'address') }] } : {}),
    };
    return { entry: { resource, request: { method: 'PUT', url: `Patient?${condition(mrnSystem(inst), s(row, 'mrn') as string)}` } } };
  }
  const patient = patientEntry(row, ctx, patientUrl);
  const subject = { reference: patientUrl };
  const visit = s(row, 'visit_no');
  const encounter = visit ? { identifier: { system: extractSystem('visit', inst), value: visit } } : undefined;
  switch (kind) {
    case 'visits': {
      const resource: Encounter = {
        resourceType: 'Encounter',
        meta: tag(inst),
        status: row.end ? 'finished' : 'in-progress',
        class: CLASS[s(row, 'class') as string],
        subject,
        period: { start: s(row, 'start'), ...(row.end ? { end: s(row, 'end') } : {}) },
        ...(row.department ? { serviceType: { text: s(row, 'department') } } : {}),
      };
      return { patient, entry: put(resource, extractSystem('visit', inst), visit as string) };
    }
    case 'diagnoses': {
      const resource: Condition = {
        resourceType: 'Condition',
        meta: tag(inst),
        clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }] },
        verificationStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-ver-status', code: 'confirmed' }] },
        category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-category', code: 'encounter-diagnosis' }] }],
        code: { coding: [{ system: ICD10_SYSTEM, code: s(row, 'icd10'), display: s(row, 'name') }], text: s(row, 'name') },
        subject,
        ...(encounter ? { encounter } : {}),
        recordedDate: s(row, 'recorded'),
        ...(row.primary === true ? { extension: [{ url: `${FHIR_BASE}/StructureDefinition/primary-diagnosis`, valueBoolean: true }] } : {}),
      };
      return { patient, entry: put(resource, extractSystem('diagnosis', inst), `${visit as string}|${n(row, 'seq') as number}`) };
    }
    case 'prescriptions': {
      const days = n(row, 'days') as number;
      const long = row.long_term === true;
      const resource: MedicationRequest = {
        resourceType: 'MedicationRequest',
        meta: tag(inst),
        status: 'active',
        intent: 'order',
        medicationCodeableConcept: { coding: [{ system: localSystem(inst, 'drug'), code: s(row, 'drug_code'), display: s(row, 'drug_name') }], text: s(row, 'drug_name') },
        subject,
        ...(encounter ? { encounter } : {}),
        authoredOn: s(row, 'authored'),
        // 长处方: a long prescription for a stable chronic condition is continuous therapy.
        courseOfTherapyType: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy', code: long ? 'continuous' : 'acute' }], ...(long ? { text: '长处方' } : {}) },
        dosageInstruction: [
          {
            ...(row.frequency ? { text: s(row, 'frequency'), timing: { code: { text: s(row, 'frequency') } } } : {}),
            ...(n(row, 'dose') !== undefined ? { doseAndRate: [{ doseQuantity: { value: n(row, 'dose'), ...(row.dose_unit ? { unit: s(row, 'dose_unit') } : {}) } }] } : {}),
          },
        ],
        dispenseRequest: { expectedSupplyDuration: { value: days, unit: 'd', system: 'http://unitsofmeasure.org', code: 'd' } },
      };
      return { patient, entry: put(resource, extractSystem('prescription', inst), `${s(row, 'rx_no') as string}|${n(row, 'item') as number}`) };
    }
    case 'lab-results': {
      const local: Coding = { system: localSystem(inst, 'lab'), code: s(row, 'item_code'), display: s(row, 'item_name') };
      const standard = ctx.translate?.(local) ?? [];
      const value = s(row, 'value') as string;
      const numeric = /^[+-]?(\d+(\.\d*)?|\.\d+)$/.test(value);
      const unit = s(row, 'unit');
      const low = n(row, 'ref_low');
      const high = n(row, 'ref_high');
      const flag = FLAG[s(row, 'flag') ?? ''];
      const resource: Observation = {
        resourceType: 'Observation',
        meta: tag(inst),
        status: 'final',
        category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'laboratory' }] }],
        code: { coding: [...standard, local], text: s(row, 'item_name') },
        subject,
        effectiveDateTime: s(row, 'result_time'),
        ...(numeric ? { valueQuantity: { value: Number(value), ...(unit ? { unit } : {}) } } : { valueString: value }),
        ...(flag ? { interpretation: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation', code: flag }] }] } : {}),
        ...(low !== undefined || high !== undefined
          ? { referenceRange: [{ ...(low !== undefined ? { low: { value: low, ...(unit ? { unit } : {}) } } : {}), ...(high !== undefined ? { high: { value: high, ...(unit ? { unit } : {}) } } : {}) }] }
          : {}),
      };
      return { patient, entry: put(resource, extractSystem('lab-result', inst), `${s(row, 'report_no') as string}|${s(row, 'item_code') as string}`) };
    }
    default:
      throw new Error(`No resource builder for extract kind "${kind}"`);
  }
}
