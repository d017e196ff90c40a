/**
 * The county reading centre answers over HL7 v2: its ORU^R01 report names the reading request
 * (OBR-2 placer order number = the request's identifier, or the study's accession number in
 * OBR-3), and is linked to the request and the study, the Task and ServiceRequest completed and
 * the township notified, as with the FHIR `$complete`. Another centre's report on the request is
 * refused naming the field; an ORU naming no reading request is stored as before.
 */
import t from 'tap';
import type { Bundle, DiagnosticReport, ImagingStudy, Observation, Parameters, ServiceRequest, Task } from '@medplum/fhirtypes';
import { BACKENDS } from '../helpers/db.js';
import { readingSetup } from './fixture.js';
import { READING_REQUEST_SYSTEM } from '../../src/reading/index.js';
import { ackOf } from '../ingest/fixture.js';

const COUNTY = '1233042447101234XX';
const HL7 = { 'content-type': 'x-application/hl7-v2+er7' };

/** One DX study of the township's PACS. */
function study(uid: string, accession: string, mrn: string): string {
  return JSON.stringify([
    {
      '0020000D': { vr: 'UI', Value: [uid] },
      '0020000E': { vr: 'UI', Value: [`${uid}.1`] },
      '00080018': { vr: 'UI', Value: [`${uid}.1.1`] },
      '00080016': { vr: 'UI', Value: ['1.2.840.10008.5.1.4.1.1.1.1'] },
      '00080060': { vr: 'CS', Value: ['DX'] },
      '00080050': { vr: 'SH', Value: [accession] },
      '00100020': { vr: 'LO', Value: [mrn] },
      '00100010': { vr: 'PN', Value: [{ Alphabetic: '李^四' }] },
    },
  ]);
}

/** The centre's ORU^R01: one OBR (placer, filler order numbers), two OBX lines of findings and impression. */
function oru(o: { app?: string; controlId: string; placer?: string; filler?: string; mrn: string }): string {
  return [
    `MSH|^~\\&|${o.app ?? 'QSHIS'}|${o.app === 'CGLIS' ? 'CGZWSY' : 'QSXRMYY'}|COUNTY-HIE|QS|20261123103000+0800||ORU^R01^ORU_R01|${o.controlId}|P|2.5.1||||||UNICODE UTF-8`,
    `PID|1||${o.mrn}^^^QSHIS^MR||李^四||19580706|M`,
    `ORC|RE|${o.placer ?? ''}|${o.filler ?? ''}`,
    `OBR|1|${o.placer ?? ''}|${o.filler ?? ''}|36643-5^XR Chest 2 Views^LN|||20261123090000|||||||||||||||20261123102500|||F`,
    'OBX|1|TX|18782-3^Radiology Study observation^LN||双肺纹理清晰，未见明显实质性病变。||||||F',
    'OBX|2|TX|19005-8^Radiology Imaging study [Impression]^LN||心肺未见异常。||||||F',
  ].join('\r');
}

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const { ta, subscriptionId, as } = await readingSetup(t, backend);
    const { app } = ta;
    const township = await as('township1-his');
    const county = await as('county-his');
    const post = async (client: string, body: string) => app.inject({ method: 'POST', url: '/ingest/hl7v2', headers: { ...HL7, authorization: `Bearer ${await ta.token(client)}` }, payload: body });
    const get = async <T>(url: string, headers = township) => {
      const res = await app.inject({ url, headers });
      t.equal(res.statusCode, 200, `${url}: ${res.body.slice(0, 200)}`);
      return res.json<T>();
    };

    /** A study of the township, sent to the county for reading: the study, its request and Task. */
    const sendForReading = async (uid: string, accession: string, mrn: string, performer = COUNTY) => {
      const ingest = await app.inject({ method: 'POST', url: '/ingest/dicom', headers: { ...township, 'content-type': 'application/dicom+json' }, payload: study(uid, accession, mrn) });
      t.equal(ingest.statusCode, 200, ingest.body.slice(0, 300));
      const found = await get<Bundle>(`/fhir/ImagingStudy?identifier=${encodeURIComponent(`urn:dicom:uid|urn:oid:${uid}`)}`);
      const s = found.entry?.[0]?.resource as ImagingStudy;
      const params: Parameters = { resourceType: 'Parameters', parameter: [{ name: 'performer', valueString: performer }] };
      const res = await app.inject({ method: 'POST', url: `/fhir/ImagingStudy/${s.id}/$request-reading`, headers: township, payload: params });
      t.equal(res.statusCode, 201, res.body.slice(0, 300));
      const out = res.json<Parameters>();
      return {
        study: s,
        sr: out.parameter?.find((p) => p.name === 'serviceRequest')?.resource as ServiceRequest & { id: string },
        task: out.parameter?.find((p) => p.name === 'task')?.resource as Task & { id: string },
      };
    };
    const requestNumber = (sr: ServiceRequest) => sr.identifier?.find((i) => i.system === READING_REQUEST_SYSTEM)?.value as string;
    const reportsOf = async (subject: string) => (await get<Bundle>(`/fhir/DiagnosticReport?subject=${subject}`)).entry?.map((e) => e.resource as DiagnosticReport) ?? [];

    t.test('a report naming the request by placer order number closes it', async (t) => {
      const { study: s, sr, task } = await sendForReading('1.2.156.112605.77.11', 'CG2026112311', 'CG-00411');
      // Another institution's report on the county's request: refused, naming OBR-2, and kept.
      const foreign = await post('township1-his', oru({ app: 'CGLIS', controlId: 'RD-X1', placer: requestNumber(sr), mrn: 'CG-00411' }));
      const nack = ackOf(foreign.rawPayload);
      t.equal(nack.code, 'AE');
      t.match(nack.err?.[2], /OBR\^1\^2/, 'the ERR names OBR-2');
      t.match(nack.err?.[8], /only the reading centre it names reports on it/);
      t.same(await reportsOf(s.subject.reference as string), [], 'nothing stored');
      t.equal((await get<Task>(`/fhir/Task/${task.id}`)).status, 'requested');

      const res = await post('county-his', oru({ controlId: 'RD-1', placer: requestNumber(sr), filler: 'QS-RIS-0001', mrn: 'QS-88001' }));
      t.equal(ackOf(res.rawPayload).code, 'AA', res.body);
      const reports = await reportsOf(s.subject.reference as string);
      t.equal(reports.length, 1, 'the report is on the township’s patient record');
      const report = reports[0];
      t.same(report.basedOn, [{ reference: `ServiceRequest/${sr.id}` }]);
      t.same(report.imagingStudy, [{ reference: `ImagingStudy/${s.id}` }]);
      t.equal(report.meta?.tag?.find((x) => x.code === COUNTY)?.code, COUNTY, 'the report is the county’s');
      t.equal(report.status, 'final');
      t.equal(report.result?.length, 2);
      for (const r of report.result ?? []) {
        const obs = await get<Observation>(`/fhir/${r.reference as string}`);
        t.equal(obs.subject?.reference, s.subject.reference, 'its findings are about the same patient');
      }
      const taskNow = await get<Task>(`/fhir/Task/${task.id}`);
      t.equal(taskNow.status, 'completed');
      t.same(taskNow.output?.map((o) => o.valueReference?.reference), [`DiagnosticReport/${report.id}`]);
      t.equal((await get<ServiceRequest>(`/fhir/ServiceRequest/${sr.id}`)).status, 'completed');
      const orders = await get<Bundle>(`/fhir/ServiceRequest?subject=${s.subject.reference as string}`, county);
      t.same(orders.entry?.map((e) => e.resource?.id), [sr.id], 'no second order made of the ORC: the request is the order');
      const events = await ta.tdb.db.query<{ id: string }>(`SELECT id FROM subscription_event WHERE subscription_id = $1 AND type = 'Task'`, [subscriptionId]);
      t.ok(
        events.rows.some((r) => r.id === task.id),
        'the completed Task is queued for the township’s subscription',
      );
    });

    t.test('a report naming the study by accession number (filler order number) closes its request', async (t) => {
      const { study: s, sr, task } = await sendForReading('1.2.156.112605.77.12', 'CG2026112312', 'CG-00412');
      const res = await post('county-his', oru({ controlId: 'RD-2', filler: 'CG2026112312', mrn: 'QS-88002' }));
      t.equal(ackOf(res.rawPayload).code, 'AA', res.body);
      const [report] = await reportsOf(s.subject.reference as string);
      t.same(report?.basedOn, [{ reference: `ServiceRequest/${sr.id}` }]);
      t.same(report?.imagingStudy, [{ reference: `ImagingStudy/${s.id}` }]);
      t.equal((await get<Task>(`/fhir/Task/${task.id}`)).status, 'completed');
    });

    t.test('an accession number of another centre’s reading request does not link: accession numbers are each institution’s own', async (t) => {
      const { task } = await sendForReading('1.2.156.112605.77.13', 'QS-RIS-0777', 'CG-00413', '12330424471034522H');
      const res = await post('county-his', oru({ controlId: 'RD-4', filler: 'QS-RIS-0777', mrn: 'QS-88004' }));
      t.equal(ackOf(res.rawPayload).code, 'AA', res.body);
      const found = await get<Bundle>(`/fhir/DiagnosticReport?identifier=QS-RIS-0777`, county);
      const report = found.entry?.[0]?.resource as DiagnosticReport;
      t.ok(report, 'stored as the county’s own report');
      t.notOk(report?.imagingStudy, 'linked to no study');
      t.equal((await get<Task>(`/fhir/Task/${task.id}`)).status, 'requested', 'the other centre’s Task is untouched');
    });

    t.test('an ORU naming no reading request is stored as mapped', async (t) => {
      const res = await post('county-his', oru({ controlId: 'RD-3', placer: 'P-NOT-A-READING', filler: 'F-NOT-A-READING', mrn: 'QS-88003' }));
      t.equal(ackOf(res.rawPayload).code, 'AA', res.body);
      const found = await get<Bundle>(`/fhir/DiagnosticReport?identifier=F-NOT-A-READING`, county);
      const report = found.entry?.[0]?.resource as DiagnosticReport;
      t.ok(report, 'stored');
      t.notOk(report.imagingStudy, 'linked to no study');
      t.match(report.basedOn?.[0]?.reference ?? '', /^ServiceRequest\//, 'based on the order of its ORC');
    });
  });
}
