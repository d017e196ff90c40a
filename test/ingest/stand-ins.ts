/**
 * A stand-in mapping for the pipeline tests (the pipeline takes the mapping as a function): small,
 * and failing the way the mapping engine does (MappingError with a location and an HL7 code).
 */
import type { Bundle, BundleEntry } from '@medplum/fhirtypes';
import type { Hl7Message, Hl7Location } from '../../src/ingest/hl7v2/model.js';
import { valueAt } from '../../src/ingest/hl7v2/model.js';
import type { MappingContext } from '../../src/ingest/pipeline.js';

/** Shaped as the mapping engine's MappingError: a numeric HL7 table 0357 code and a location. */
export class MappingError extends Error {
  override readonly name = 'MappingError';
  constructor(message: string, readonly location: Hl7Location, readonly hl7Code = 101) {
    super(message);
  }
}

/** PID → Patient (conditional create by MRN of the sender), each OBX → Observation. */
export function mapStandIn(msg: Hl7Message, ctx: MappingContext): { bundle: Bundle } {
  const pid = msg.segments.find((s) => s.name === 'PID');
  if (!pid) throw new MappingError('PID segment is required', { segment: 'PID' });
  const mrn = valueAt(pid, 3);
  if (!mrn) throw new MappingError('PID-3 (patient identifier) is empty', { segment: 'PID', position: pid.position, field: 3, component: 1 });
  const system = `https://fhir.county-hie.cn/mrn/${ctx.senderId}`;
  const patientUrl = 'urn:uuid:6f1c0a52-0000-4000-8000-000000000001';
  const entry: BundleEntry[] = [
    {
      fullUrl: patientUrl,
      resource: { resourceType: 'Patient', identifier: [{ system, value: mrn }], name: [{ family: valueAt(pid, 5, 1), given: [valueAt(pid, 5, 2)] }] },
      request: { method: 'POST', url: 'Patient', ifNoneExist: `identifier=${system}|${mrn}` },
    },
  ];
  for (const obx of msg.segments.filter((s) => s.name === 'OBX')) {
    const value = Number(valueAt(obx, 5));
    entry.push({
      resource: {
        resourceType: 'Observation',
        status: valueAt(obx, 11) === 'F' ? 'final' : (valueAt(obx, 11) as 'final'),
        code: { coding: [{ system: 'http://loinc.org', code: valueAt(obx, 3) }] },
        subject: { reference: patientUrl },
        valueQuantity: { value, unit: valueAt(obx, 6), system: 'http://unitsofmeasure.org', code: valueAt(obx, 6) },
      },
      request: { method: 'POST', url: 'Observation' },
    });
  }
  return { bundle: { resourceType: 'Bundle', type: 'transaction', entry } };
}

export interface MessageOptions {
  app?: string;
  facility?: string;
  controlId?: string;
  type?: string;
  version?: string;
  charset?: string;
  mrn?: string;
  obxStatus?: string;
  family?: string;
  /** MSH-15 and MSH-16 (enhanced acknowledgement mode). */
  acceptAck?: string;
  applicationAck?: string;
}

/** An ORU^R01 with one patient and one glucose result, as text (segments joined with \r). */
export function oru(o: MessageOptions = {}): string {
  const msh = [
    'MSH', '^~\\&', o.app ?? 'QSLIS', o.facility ?? 'QSXRMYY', 'COUNTY-HIE', 'QS', '20250301083000+0800', '',
    o.type ?? 'ORU^R01^ORU_R01', o.controlId ?? 'MSG0001', 'P', o.version ?? '2.5', '', '', o.acceptAck ?? '', o.applicationAck ?? '', '', o.charset ?? '',
  ].join('|');
  return [
    msh,
    `PID|1||${o.mrn ?? 'MRN1001'}^^^QSLIS^MR||${o.family ?? 'Wang'}^Fang||19650312|F`,
    'OBR|1|ORD1|FIL1|2345-7^Glucose^LN',
    `OBX|1|NM|2345-7^Glucose^LN||6.2|mmol/L|3.9-6.1|H|||${o.obxStatus ?? 'F'}`,
  ].join('\r');
}
