/**
 * The mapping engine and loader: load-time refusals (file + JSON pointer + reason), identity and
 * idempotency, HL7 error codes, the terminology hook and site overrides.
 */
import { cpSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import type { Observation, Patient } from '@medplum/fhirtypes';
import { parseHl7Text } from '../../../../src/ingest/hl7v2/index.js';
import { loadMappings, mapMessage, MappingError, MappingLoadError } from '../../../../src/ingest/hl7v2/mapping/index.js';
import { idCardCheckChar } from '../../../../src/mpi/index.js';

const BASE = fileURLToPath(new URL('../../../../mappings/hl7v2/', import.meta.url));
const registry = loadMappings(BASE);
const USCC = '12330000MB0000000X';
const ID17 = '33012219800101123';
const ID_CARD = ID17 + idCardCheckChar(ID17);

function oru(obx: number, status = 'F', value = '5.6'): string {
  const lines = [
    'MSH|^~\\&|LIS|HOSP|HIE|HIE|20240501103000||ORU^R01^ORU_R01|MSG0001|P|2.5.1',
    `PID|1||M123^^^HOSP^MR~${ID_CARD}^^^^NNCHN||张^三||19800101|1`,
    'PV1|1|I|||||||||||||||||V987',
    'ORC|RE|P555|F777',
    'OBR|1|P555|F777|GLU^血糖^L|||20240501090000',
  ];
  for (let i = 1; i <= obx; i++) lines.push(`OBX|${i}|NM|T${i}^Test ${i}^L||${value}|mmol/L^^UCUM|3.9-6.1|H|||${status}|||20240501093000`);
  return lines.join('\r');
}

t.test('ORU: patient keyed on the MRN, ID card kept, observations keyed on filler + code', async (t) => {
  const { bundle } = mapMessage(parseHl7Text(oru(2)), { sender: { institution: USCC }, mappings: registry });
  const [patient, encounter] = bundle.entry ?? [];
  t.match(patient.request, { method: 'PUT', url: /^Patient\?identifier=https%3A%2F%2Ffhir\.county-hie\.cn%2Fsid%2Fmrn%2F12330000MB0000000X\|M123$/ });
  t.ok((patient.resource as Patient).identifier?.some((i) => i.system === 'urn:oid:2.16.156.10011.1.3' && i.value === ID_CARD));
  t.equal((patient.resource as Patient).gender, 'male', 'GB/T 2261.1 code 1');
  t.match(encounter.request, { url: /^Encounter\?identifier=.*\|V987$/ });
  const obs = (bundle.entry ?? []).filter((e) => e.resource?.resourceType === 'Observation');
  t.equal(obs.length, 2);
  t.match(obs[0].request, { method: 'PUT', url: /^Observation\?identifier=.*\|F777%5C%7CT1%5C%7C%5C%7C1$/ });
  const o = obs[0].resource as Observation;
  t.same(o.valueQuantity, { value: 5.6, unit: 'mmol/L', system: 'http://unitsofmeasure.org', code: 'mmol/L' });
  t.same(o.referenceRange?.[0].low?.value, 3.9);
  t.equal(o.interpretation?.[0].coding?.[0].code, 'H');
  t.equal(o.effectiveDateTime, '2024-05-01T09:30:00+08:00');
  t.equal(o.subject?.reference, patient.fullUrl);
  t.ok(bundle.entry?.every((e) => e.fullUrl?.startsWith('urn:uuid:')));
});

t.test('a correction (OBX-11 C) updates the same Observation with the same fullUrl', async (t) => {
  const a = mapMessage(parseHl7Text(oru(1)), { sender: { institution: USCC }, mappings: registry }).bundle;
  const b = mapMessage(parseHl7Text(oru(1, 'C', '5.9')), { sender: { institution: USCC }, mappings: registry }).bundle;
  const oa = a.entry?.find((e) => e.resource?.resourceType === 'Observation');
  const ob = b.entry?.find((e) => e.resource?.resourceType === 'Observation');
  t.equal(ob?.request?.url, oa?.request?.url);
  t.equal(ob?.fullUrl, oa?.fullUrl);
  t.equal((ob?.resource as Observation).status, 'corrected');
});

t.test('the terminology hook adds codings to OBX-3', async (t) => {
  const { bundle } = mapMessage(parseHl7Text(oru(1)), {
    sender: { institution: USCC },
    mappings: registry,
    translate: (c) => (c.code === 'T1' ? [{ system: 'http://loinc.org', code: '2345-7' }] : []),
  });
  const o = bundle.entry?.find((e) => e.resource?.resourceType === 'Observation')?.resource as Observation;
  t.same(o.code.coding?.map((c) => c.code), ['T1', '2345-7']);
});

t.test('HL7 error codes: 200 unknown type, 201 unknown event, 101 missing patient id', async (t) => {
  const ctx = { sender: { institution: USCC }, mappings: registry };
  const code = (text: string): number | undefined => {
    try {
      mapMessage(parseHl7Text(text), ctx);
    } catch (e) {
      return (e as MappingError).hl7Code;
    }
    return undefined;
  };
  t.equal(code('MSH|^~\\&|A|B|C|D|20240101||ZZZ^Z01|1|P|2.5'), 200);
  t.equal(code('MSH|^~\\&|A|B|C|D|20240101||ADT^A99|1|P|2.5\rPID|1||X'), 201);
  const e = t.throws(() => mapMessage(parseHl7Text('MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\rPID|1||||Doe^John'), ctx)) as MappingError;
  t.equal(e.hl7Code, 101);
  t.match(e.location, { segment: 'PID', field: 3 });
});

t.test('a bad mapping file stops loading with file, JSON pointer and reason', async (t) => {
  const bad = (mutate: (dir: string) => void): MappingLoadError => {
    const dir = mkdtempSync(join(tmpdir(), 'map-'));
    cpSync(BASE, dir, { recursive: true });
    mutate(dir);
    return t.throws(() => loadMappings(dir)) as MappingLoadError;
  };
  const unknownFn = bad((d) => writeFileSync(join(d, 'datatypes/TS.json'), JSON.stringify({ kind: 'datatype', name: 'TS', fields: [{ target: '.', fn: 'evalJs', from: '.1' }] })));
  t.match(unknownFn, { name: 'MappingLoadError', file: /TS\.json$/, pointer: '/fields/0/fn', reason: /unknown value function "evalJs"/ });
  const badPath = bad((d) => writeFileSync(join(d, 'datatypes/TS.json'), JSON.stringify({ kind: 'datatype', name: 'TS', fields: [{ target: '.', fn: 'dateTime', from: 'PID 7' }] })));
  t.match(badPath, { pointer: '/fields/0/from', reason: /pattern/ });
  const leak = bad((d) => writeFileSync(join(d, 'datatypes/TS.json'), JSON.stringify({ kind: 'datatype', name: 'TS', fields: [{ target: '.', var: 'institution' }] })));
  t.match(leak, { pointer: '/fields/0/var', reason: /not declared/ });
});

t.test('a site folder overrides a base file by name', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'map-'));
  cpSync(BASE, dir, { recursive: true });
  mkdirSync(join(dir, 'sites/county-lis/datatypes'), { recursive: true });
  writeFileSync(
    join(dir, 'sites/county-lis/datatypes/XPN.json'),
    JSON.stringify({ kind: 'datatype', name: 'XPN', fields: [{ target: 'text', from: '.1.1' }] }),
  );
  const reg = loadMappings(dir);
  t.same(reg.sites, ['county-lis']);
  const msg = parseHl7Text(oru(1));
  const site = mapMessage(msg, { sender: { institution: USCC, site: 'county-lis' }, mappings: reg }).bundle.entry?.[0].resource as Patient;
  const base = mapMessage(msg, { sender: { institution: USCC }, mappings: reg }).bundle.entry?.[0].resource as Patient;
  t.same(site.name, [{ text: '张' }]);
  t.same(base.name, [{ family: '张', given: ['三'] }]);
});

t.test('PID-19 and PID-20 as typed Patient identifiers; a resident ID card in PID-19 gets the ID card system', async (t) => {
  const adt = (pid19: string): Patient => {
    const text = ['MSH|^~\\&|HIS|HOSP|HIE|HIE|20240501103000||ADT^A04|M1|P|2.5.1', `PID|1||M123^^^HOSP^MR||张^三||19800101|1||||||||||A77|${pid19}|DL-9^ZJ^20300101`].join('\r');
    return mapMessage(parseHl7Text(text), { sender: { institution: USCC }, mappings: registry }).bundle.entry?.[0].resource as Patient;
  };
  const card = adt(ID_CARD).identifier ?? [];
  t.match(card, [{ value: 'M123' }, { system: 'urn:oid:2.16.156.10011.1.3', value: ID_CARD, type: { coding: [{ code: 'NNCHN' }] } }, { type: { coding: [{ code: 'DL' }] }, value: 'DL-9', period: { end: '2030-01-01' } }]);
  t.notOk(card.some((i) => i.value === 'A77'), 'PID-18 account number is not a Patient identifier');
  const ssn = adt('123-45-6789').identifier ?? [];
  t.match(ssn[1], { type: { coding: [{ code: 'SS' }] }, system: `https://fhir.county-hie.cn/sid/ssn/${USCC}`, value: '123-45-6789' });
});

t.test('REF^I12: the referral is a ServiceRequest keyed on RF1-6; a date-only OBX-19 is no instant and is left out', async (t) => {
  const text = [
    'MSH|^~\\&|HIS|HOSP|HIE|HIE|20240501103000||REF^I12^REF_I12|R1|P|2.5.1',
    'RF1|A^Accepted^HL70283|S^STAT^HL70280|Med^Medical^HL70281||O^Outpatient^HL70284|R-42^HOSP|20240501|20240601|20240430',
    'PID|1||M123^^^HOSP^MR||张^三||19800101|1',
    'DG1|1||K63.3^Ulcer of Intestine^I10',
    'OBR|1|P1|F1|22310-7^H. pylori Ab^LN',
    'OBX|1|ST|22310-7^H. pylori Ab^LN||Positive||||||F|||20240420|||||20240420',
  ].join('\r');
  const { bundle, warnings } = mapMessage(parseHl7Text(text), { sender: { institution: USCC }, mappings: registry });
  const referral = bundle.entry?.find((e) => e.resource?.resourceType === 'ServiceRequest' && e.request?.url.includes('R-42'));
  t.match(referral?.resource, { status: 'active', intent: 'order', priority: 'stat', category: [{ coding: [{ code: '3457005' }] }], reasonReference: [{}], supportingInfo: [{}] });
  const obs = bundle.entry?.find((e) => e.resource?.resourceType === 'Observation')?.resource as Observation;
  t.equal(obs.issued, undefined);
  t.ok(warnings.some((w) => /not an instant/.test(w.message)));
});

t.test("Patient identifiers from IN2-61, DB1-3 and a self-guarantor's GT1, and only those", async (t) => {
  const in2 = Array.from({ length: 62 }, () => '');
  Object.assign(in2, { 0: 'IN2', 6: 'MEDICARE-1', 8: 'MEDICAID-1', 10: 'MIL-1', 61: 'MB-5^^^&2.16.840.1.113883.1.5&ISO^MB' });
  const adt = (db1Who: string, gt1Who: string, gt1Ssn: string): Patient => {
    const text = [
      'MSH|^~\\&|HIS|HOSP|HIE|HIE|20240501103000||ADT^A04|M1|P|2.5.1',
      'PID|1||M123^^^HOSP^MR||张^三||19800101|1|||||||||||SSN-1',
      `DB1|1|${db1Who}|DIS-7^^^&1.2.3&ISO^PN`,
      `GT1|1|G-9^^^HOSP^GN|张^三||||||||${gt1Who}^^HL70063|${gt1Ssn}|||||||EMP-4^^^&1.2.4&ISO^EI`,
      'IN1|1|CXJM^城乡居民医保|330100^医保局|医保局||||||||20250101|20251231||||SPO^配偶',
      in2.join('|'),
    ].join('\r');
    return mapMessage(parseHl7Text(text), { sender: { institution: USCC }, mappings: registry }).bundle.entry?.[0].resource as Patient;
  };
  const values = (p: Patient): string[] => (p.identifier ?? []).map((i) => i.value ?? '');
  const self = adt('PT', 'SEL', 'SSN-2');
  t.match(self.identifier?.find((i) => i.value === 'MB-5'), { system: 'urn:oid:2.16.840.1.113883.1.5', type: { coding: [{ code: 'MB' }] } }, "IN2-61, the patient's member number");
  t.match(self.identifier?.find((i) => i.value === 'DIS-7'), { system: 'urn:oid:1.2.3' }, 'DB1-3 when DB1-2 is PT');
  t.ok(['G-9', 'SSN-2', 'EMP-4'].every((v) => values(self).includes(v)), "a self-guarantor's GT1-2, GT1-12 and GT1-19");
  t.notOk(['MEDICARE-1', 'MEDICAID-1', 'MIL-1'].some((v) => values(self).includes(v)), "the insured's IN2-6/8/10 stay off the Patient");
  const other = adt('SP', 'SPO', 'SSN-2');
  t.notOk(['DIS-7', 'G-9', 'SSN-2', 'EMP-4'].some((v) => values(other).includes(v)), "a disabled spouse's and a guarantor spouse's numbers are not the patient's");
  t.ok(values(other).includes('MB-5'));
  const same = adt('PT', 'SEL', 'SSN-1');
  t.equal(values(same).filter((v) => v === 'SSN-1').length, 1, 'the same SSN in PID-19 and GT1-12 is one identifier');
});

t.test('PDA-1 cause of death becomes a Condition; a PDA without a cause makes none', async (t) => {
  const adt = (pda: string) =>
    mapMessage(parseHl7Text(['MSH|^~\\&|HIS|HOSP|HIE|HIE|20240501103000||ADT^A03|M1|P|2.5.1', 'PID|1||M123^^^HOSP^MR||张^三||19800101|1', 'PV1|1|I|||||||||||||||||V987', pda].join('\r')), {
      sender: { institution: USCC },
      mappings: registry,
    }).bundle.entry ?? [];
  const conditions = adt('PDA|I21.9^急性心肌梗死^I10|||20240502080000+0800').filter((e) => e.resource?.resourceType === 'Condition');
  t.equal(conditions.length, 1);
  t.match(conditions[0].resource, { category: [{ text: 'cause of death' }], code: { coding: [{ code: 'I21.9', display: '急性心肌梗死' }] }, recordedDate: '2024-05-02T08:00:00+08:00' });
  t.match(conditions[0].request, { method: 'PUT', url: /^Condition\?identifier=.*cause-of-death.*\|I21\.9%5C%7CM123$/ }, 'keyed on cause + patient, so a resend updates it');
  t.equal(adt('PDA||||||Y').filter((e) => e.resource?.resourceType === 'Condition').length, 0);
});

t.test('OBX-11 as the v2-to-FHIR IG maps it; the codes it leaves unmapped give unknown', async (t) => {
  const statusOf = (code: string): string | undefined => {
    const { bundle, warnings } = mapMessage(parseHl7Text(oru(1, code)), { sender: { institution: USCC }, mappings: registry });
    t.same(warnings.filter((w) => w.message.includes('resultStatus')), [], `${code}: no warning`);
    return (bundle.entry?.find((e) => e.resource?.resourceType === 'Observation')?.resource as Observation).status;
  };
  const expected: Record<string, string> = { F: 'final', P: 'preliminary', C: 'corrected', A: 'amended', D: 'entered-in-error', W: 'entered-in-error', X: 'cancelled', U: 'final' };
  for (const code of ['I', 'O', 'S', 'R', 'N', 'B', 'V']) expected[code] = 'unknown';
  for (const [code, status] of Object.entries(expected)) t.equal(statusOf(code), status, `OBX-11 ${code} → ${status}`);
  const notAsked = mapMessage(parseHl7Text(oru(1, 'N', '')), { sender: { institution: USCC }, mappings: registry }).bundle;
  const o = notAsked.entry?.find((e) => e.resource?.resourceType === 'Observation')?.resource as Observation;
  t.equal(o.dataAbsentReason?.coding?.[0].code, 'not-asked', 'N without a value: not asked, as the IG says');
});

t.test('OBX-5 of type ED or RP is kept in the IG valueAttachment extension, not dropped', async (t) => {
  const ATT = 'https://hl7.org/fhir/5.0/StructureDefinition/extension-Observation.valueAttachment';
  const one = (type: string, value: string): { o: Observation; warnings: string[] } => {
    const text = oru(1).replace(/OBX\|1\|NM\|[^\r]*/, `OBX|1|${type}|T1^Report^L||${value}||||||F`);
    const { bundle, warnings } = mapMessage(parseHl7Text(text), { sender: { institution: USCC }, mappings: registry });
    return { o: bundle.entry?.find((e) => e.resource?.resourceType === 'Observation')?.resource as Observation, warnings: warnings.map((w) => w.message) };
  };
  const pdf = Buffer.from('%PDF-1.4 report').toString('base64');
  t.same(one('ED', `LIS^AP^PDF^Base64^${pdf}`).o.extension, [{ url: ATT, valueAttachment: { contentType: 'application/pdf', data: pdf } }], 'Base64 kept as it is');
  t.same(one('ED', 'LIS^IM^JPEG^Hex^ffd8ff').o.extension, [{ url: ATT, valueAttachment: { contentType: 'image/jpeg', data: Buffer.from('ffd8ff', 'hex').toString('base64') } }], 'Hex re-encoded');
  t.same(one('ED', 'LIS^TEXT^^A^血糖偏高').o.extension?.[0].valueAttachment, { contentType: 'text/plain', data: Buffer.from('血糖偏高').toString('base64') }, 'ASCII (text) encoded as UTF-8');
  const bad = one('ED', 'LIS^AP^PDF^Base64^not*base64');
  t.equal(bad.o.extension, undefined);
  t.match(bad.warnings.join('\n'), /not valid base64/, 'invalid base64 is a warning naming the problem');
  t.same(one('RP', 'https://pacs.example.cn/wado?study=1.2.3^PACS^IM^JPEG').o.extension, [{ url: ATT, valueAttachment: { contentType: 'image/jpeg', url: 'https://pacs.example.cn/wado?study=1.2.3' } }], 'a pointer that is a URL');
  t.same(one('RP', 'IMG-0042^PACS^IM^DICOM').o.extension?.[0].valueAttachment, { contentType: 'application/dicom', title: 'PACS:IMG-0042' }, 'a pointer that is not a URL becomes the title, with its application');
});

t.test('PDA indicators and an accident (ACC) become Observations keyed on the patient', async (t) => {
  const adt = [
    'MSH|^~\\&|HIS|HOSP|HIE|HIE|20240501103000||ADT^A08^ADT_A01|MSG0002|P|2.5.1',
    `PID|1||M123^^^HOSP^MR||张^三||19800101|1`,
    'PV1|1|I|||||||||||||||||V987',
    'ACC|20240428153000|TA^交通事故^HL70050|国道G320||Y|N||电动车与汽车相撞||N',
    'PDA|I21^急性心肌梗死^I10||Y|20240501090000|D01^李^医生|N|||Y',
  ].join('\r');
  const { bundle } = mapMessage(parseHl7Text(adt), { sender: { institution: USCC }, mappings: registry });
  const obs = (bundle.entry ?? []).filter((e) => e.resource?.resourceType === 'Observation');
  const byCode = new Map(obs.map((e) => [(e.resource as Observation).code.coding?.[0].code, e]));
  const injury = byCode.get('11374-6')?.resource as Observation;
  t.equal(injury.valueString, '电动车与汽车相撞');
  t.equal(injury.effectiveDateTime, '2024-04-28T15:30:00+08:00');
  t.equal(injury.note?.[0].text, '国道G320');
  t.equal(injury.status, 'final');
  const certificate = byCode.get('308646001');
  t.equal((certificate?.resource as Observation).valueCodeableConcept?.coding?.[0].code, 'Y');
  t.equal((certificate?.resource as Observation).effectiveDateTime, '2024-05-01T09:00:00+08:00');
  t.match(certificate?.request, { method: 'PUT', url: /^Observation\?identifier=.*death-certificate.*\|M123$/ }, 'keyed on the patient: an A08 sent again updates it');
  t.equal((byCode.get('85699-7')?.resource as Observation).valueCodeableConcept?.coding?.[0].code, 'N', 'autopsy indicator');
  t.equal((byCode.get('74497-9')?.resource as Observation).valueCodeableConcept?.coding?.[0].code, 'Y', 'coroner indicator');
  t.ok((bundle.entry ?? []).some((e) => e.resource?.resourceType === 'Condition'), 'the cause of death is still a Condition');
  const again = mapMessage(parseHl7Text(adt.replace('|Y|20240501090000|', '|N|20240501090000|')), { sender: { institution: USCC }, mappings: registry }).bundle;
  const cert2 = (again.entry ?? []).find((e) => (e.resource as Observation | undefined)?.code?.coding?.[0].code === '308646001');
  t.equal(cert2?.request?.url, certificate?.request?.url, 'the same Observation is updated');
});

t.test('a repeating OBX-5 gives one component per repetition; text repetitions stay lines', async (t) => {
  const map = (obx: string): Observation => {
    const text = oru(1).replace(/OBX\|1\|NM\|[^\r]*/, obx);
    const { bundle } = mapMessage(parseHl7Text(text), { sender: { institution: USCC }, mappings: registry });
    return bundle.entry?.find((e) => e.resource?.resourceType === 'Observation')?.resource as Observation;
  };
  const bp = map('OBX|1|NM|8867-4^心率^LN||72~88|/min^^UCUM|60-100|N|||F');
  t.equal(bp.valueQuantity, undefined, 'no single value');
  t.same(bp.component?.map((c) => [c.code.coding?.[0].code, c.valueQuantity?.value, c.valueQuantity?.code]), [['8867-4', 72, '/min'], ['8867-4', 88, '/min']]);
  t.equal(bp.referenceRange?.[0].low?.value, 60, 'the range of the OBX stays on the Observation');
  t.equal(bp.interpretation?.[0].coding?.[0].code, 'N');
  const one = map('OBX|1|NM|8867-4^心率^LN||72|/min^^UCUM|60-100|N|||F');
  t.equal(one.valueQuantity?.value, 72);
  t.equal(one.component, undefined, 'a single value is the value');
  const text = map('OBX|1|TX|RPT^报告^L||第一行~第二行||||||F');
  t.equal(text.valueString, '第一行\n第二行');
  t.equal(text.component, undefined);
});

t.test('XPN.15, the name the person is called by, is a second name of use nickname', async (t) => {
  const text = oru(1).replace('|张^三||', '|张^三^^^^^L^^^^^^^^小三~Zhang^San^^^^^L||');
  const { bundle } = mapMessage(parseHl7Text(text), { sender: { institution: USCC }, mappings: registry });
  const patient = bundle.entry?.[0].resource as Patient;
  t.same(patient.name, [
    { family: '张', given: ['三'], use: 'official' },
    { family: 'Zhang', given: ['San'], use: 'official' },
    { use: 'nickname', given: ['小三'] },
  ]);
  const plain = mapMessage(parseHl7Text(oru(1)), { sender: { institution: USCC }, mappings: registry }).bundle.entry?.[0].resource as Patient;
  t.equal(plain.name?.length, 1, 'no empty nickname without XPN.15');
});
