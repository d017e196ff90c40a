/**
 * Stand-in parser and mapping for the pipeline tests: small, strict enough to fail the way the
 * real ones do (errors named Hl7ParseError / MappingError with a location and an HL7 code).
 */
import type { Bundle, BundleEntry } from '@medplum/fhirtypes';
import type { Hl7Field, Hl7Message, Hl7Segment, Hl7Location } from '../../src/ingest/hl7v2/model.js';
import { valueAt } from '../../src/ingest/hl7v2/model.js';
import { decoderLabel } from '../../src/ingest/envelope.js';
import type { MappingContext } from '../../src/ingest/pipeline.js';

export class Hl7ParseError extends Error {
  override readonly name = 'Hl7ParseError';
  constructor(message: string, readonly location: Hl7Location, readonly hl7Code = '102') {
    super(message);
  }
}

export class MappingError extends Error {
  override readonly name = 'MappingError';
  constructor(message: string, readonly location: Hl7Location, readonly hl7Code = '101') {
    super(message);
  }
}

export function parseStandIn(bytes: Buffer, options: { defaultCharset: string }): Hl7Message {
  const head = bytes.toString('latin1').split(/\r\n|\r|\n/)[0];
  const msh18 = head.split('|')[17]?.split('^')[0];
  const charset = msh18 || options.defaultCharset;
  const text = new TextDecoder(decoderLabel(charset)).decode(bytes).replace(/[\r\n]+$/, '');
  const segments: Hl7Segment[] = text.split(/\r\n|\r|\n/).map((line, i) => {
    const name = line.slice(0, 3);
    if (!/^[A-Z][A-Z0-9]{2}$/.test(name)) throw new Hl7ParseError(`Segment ${i + 1} has no valid id`, { segment: name || '?', position: i + 1 });
    const parts = line.split('|');
    const fields: Hl7Field[] = [];
    const raw = name === 'MSH' ? ['MSH', '|', ...parts.slice(1)] : parts;
    raw.forEach((f, n) => {
      if (n === 0) return;
      fields[n] = f === '' ? [] : f.split('~').map((r) => r.split('^').map((c) => c.split('&')));
    });
    return { name, position: i + 1, fields };
  });
  return { delimiters: { field: '|', component: '^', repetition: '~', escape: '\\', subcomponent: '&' }, segments, charset, text };
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
}

/** An ORU^R01 with one patient and one glucose result, as text (segments joined with \r). */
export function oru(o: MessageOptions = {}): string {
  const msh = [
    'MSH', '^~\\&', o.app ?? 'QSLIS', o.facility ?? 'QSXRMYY', 'COUNTY-HIE', 'QS', '20250301083000+0800', '',
    o.type ?? 'ORU^R01^ORU_R01', o.controlId ?? 'MSG0001', 'P', o.version ?? '2.5', '', '', '', '', '', o.charset ?? '',
  ].join('|');
  return [
    msh,
    `PID|1||${o.mrn ?? 'MRN1001'}^^^QSLIS^MR||${o.family ?? 'Wang'}^Fang||19650312|F`,
    'OBR|1|ORD1|FIL1|2345-7^Glucose^LN',
    `OBX|1|NM|2345-7^Glucose^LN||6.2|mmol/L|3.9-6.1|H|||${o.obxStatus ?? 'F'}`,
  ].join('\r');
}
