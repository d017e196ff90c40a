/**
 * Township X-ray → county report, end to end: the township's PACS posts the study, the township
 * sends it for reading to the county hospital, the county claims the Task and posts its report,
 * and the township sees the report on its patient's record, linked to the study and the request.
 */
import t from 'tap';
import type { Bundle, DiagnosticReport, ImagingStudy, OperationOutcome, Parameters, ServiceRequest, Task } from '@medplum/fhirtypes';
import { BACKENDS } from '../helpers/db.js';
import { readingSetup } from './fixture.js';

const COUNTY = '1233042447101234XX';
const STUDY_UID = '1.2.156.112605.77.1';

const xray = JSON.stringify([
  {
    '0020000D': { vr: 'UI', Value: [STUDY_UID] },
    '0020000E': { vr: 'UI', Value: [`${STUDY_UID}.1`] },
    '00080018': { vr: 'UI', Value: [`${STUDY_UID}.1.1`] },
    '00080016': { vr: 'UI', Value: ['1.2.840.10008.5.1.4.1.1.1.1'] },
    '00080060': { vr: 'CS', Value: ['DX'] },
    '00080050': { vr: 'SH', Value: ['CG2026112301'] },
    '00100020': { vr: 'LO', Value: ['CG-00042'] },
    '00100010': { vr: 'PN', Value: [{ Alphabetic: '李^四' }] },
    '00180015': { vr: 'CS', Value: ['CHEST'] },
    '00081190': { vr: 'UR', Value: [`https://pacs.chengguan.example/dicom-web/studies/${STUDY_UID}`] },
  },
]);

const report: DiagnosticReport = {
  resourceType: 'DiagnosticReport',
  status: 'final',
  code: { coding: [{ system: 'http://loinc.org', code: '36643-5', display: 'XR Chest 2 Views' }] },
  subject: { reference: 'Patient/ignored' },
  conclusion: '双肺纹理清晰，未见明显实质性病变。心影不大。',
};

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const { ta, subscriptionId, as } = await readingSetup(t, backend);
    const { app } = ta;
    const township = await as('township1-his');
    const county = await as('county-his');
    const other = await as('township2-his');
    const op = (url: string, headers: Record<string, string>, payload: unknown = { resourceType: 'Parameters' }) => app.inject({ method: 'POST', url, headers, payload: payload as object });

    // 1. The township's PACS posts the X-ray.
    const ingest = await app.inject({ method: 'POST', url: '/ingest/dicom', headers: { ...township, 'content-type': 'application/dicom+json' }, payload: xray });
    t.equal(ingest.statusCode, 200, ingest.body.slice(0, 300));
    const found = (await app.inject({ url: `/fhir/ImagingStudy?identifier=${encodeURIComponent(`urn:dicom:uid|urn:oid:${STUDY_UID}`)}`, headers: township })).json<Bundle>();
    const study = found.entry?.[0]?.resource as ImagingStudy;
    t.ok(study?.id, 'study stored');

    // 2. Reading requested from the county hospital.
    const params = (performer: string, category = 'imaging'): Parameters => ({
      resourceType: 'Parameters',
      parameter: [
        { name: 'performer', valueString: performer },
        { name: 'category', valueCode: category },
        { name: 'note', valueString: '咳嗽两周，请阅片' },
      ],
    });
    const notOwner = await op(`/fhir/ImagingStudy/${study.id}/$request-reading`, other, params(COUNTY));
    t.equal(notOwner.statusCode, 403, 'another township cannot send this study');
    t.equal((await op(`/fhir/ImagingStudy/${study.id}/$request-reading`, township, params('000000000000000000'))).statusCode, 422, 'unknown centre');
    t.equal((await op(`/fhir/ImagingStudy/${study.id}/$request-reading`, township, params(COUNTY, 'mri'))).statusCode, 400, 'unknown category');
    const requested = await op(`/fhir/ImagingStudy/${study.id}/$request-reading`, township, params(COUNTY));
    t.equal(requested.statusCode, 201, requested.body.slice(0, 400));
    const out = requested.json<Parameters>();
    const sr = out.parameter?.find((p) => p.name === 'serviceRequest')?.resource as ServiceRequest;
    const task = out.parameter?.find((p) => p.name === 'task')?.resource as Task;
    t.equal(sr.category?.[0].coding?.[0].code, '363679005');
    t.equal(sr.subject.reference, study.subject.reference);
    t.equal(task.status, 'requested');
    t.equal(task.focus?.reference, `ServiceRequest/${sr.id}`);
    t.equal(task.owner?.reference, sr.performer?.[0].reference);
    const countyOrg = (await app.inject({ url: `/fhir/${task.owner?.reference as string}`, headers: county })).json<{ identifier: { value: string }[] }>();
    t.equal(countyOrg.identifier[0].value, COUNTY, 'the Task is owned by the county hospital');
    const studyNow = (await app.inject({ url: `/fhir/ImagingStudy/${study.id}`, headers: township })).json<ImagingStudy>();
    t.ok(studyNow.basedOn?.some((b) => b.reference === `ServiceRequest/${sr.id}`), 'the study is based on the reading request');

    // The county's work list: Tasks it owns, still requested.
    const worklist = (await app.inject({ url: `/fhir/Task?owner=${task.owner?.reference as string}&status=requested`, headers: county })).json<Bundle>();
    t.same(worklist.entry?.map((e) => e.resource?.id), [task.id]);

    // 3. Claim: only the owner, only once; complete only once claimed.
    t.equal((await op(`/fhir/Task/${task.id}/$complete`, county, { resourceType: 'Parameters', parameter: [{ name: 'report', resource: report }] })).statusCode, 409, 'not claimed yet');
    t.equal((await op(`/fhir/Task/${task.id}/$claim`, township, undefined)).statusCode, 403, 'the requester cannot claim');
    const claimed = await op(`/fhir/Task/${task.id}/$claim`, county, undefined);
    t.equal(claimed.statusCode, 200, claimed.body.slice(0, 300));
    t.equal(claimed.json<Task>().status, 'in-progress');
    t.equal((await op(`/fhir/Task/${task.id}/$claim`, county, undefined)).statusCode, 409, 'claimed once');
    const bad = await op(`/fhir/Task/${task.id}/$complete`, county, { resourceType: 'Parameters', parameter: [{ name: 'report', resource: { resourceType: 'Observation' } }] });
    t.equal(bad.statusCode, 400);
    t.equal(bad.json<OperationOutcome>().resourceType, 'OperationOutcome');

    // 4. The county's report.
    const done = await op(`/fhir/Task/${task.id}/$complete`, county, { resourceType: 'Parameters', parameter: [{ name: 'report', resource: report }] });
    t.equal(done.statusCode, 200, done.body.slice(0, 400));
    const result = done.json<Parameters>();
    const stored = result.parameter?.find((p) => p.name === 'report')?.resource as DiagnosticReport;
    t.equal(stored.subject?.reference, study.subject.reference, 'the report is about the study’s patient');
    t.same(stored.imagingStudy, [{ reference: `ImagingStudy/${study.id}` }]);
    t.same(stored.basedOn, [{ reference: `ServiceRequest/${sr.id}` }]);
    t.equal((result.parameter?.find((p) => p.name === 'task')?.resource as Task).status, 'completed');
    t.equal((result.parameter?.find((p) => p.name === 'serviceRequest')?.resource as ServiceRequest).status, 'completed');
    t.equal(stored.meta?.tag?.find((x) => x.code === COUNTY)?.code, COUNTY, 'the report is the county’s');

    // 5. The township sees it on its patient's record, linked to the study.
    const record = (await app.inject({ url: `/fhir/DiagnosticReport?subject=${study.subject.reference as string}`, headers: township })).json<Bundle>();
    const seen = record.entry?.map((e) => e.resource as DiagnosticReport) ?? [];
    t.equal(seen.length, 1);
    t.equal(seen[0].conclusion, report.conclusion);
    t.equal(seen[0].imagingStudy?.[0].reference, `ImagingStudy/${study.id}`);
    const taskNow = (await app.inject({ url: `/fhir/Task/${task.id}`, headers: township })).json<Task>();
    t.equal(taskNow.output?.[0].valueReference?.reference, `DiagnosticReport/${stored.id}`, 'the township’s Task points to the report');
    const events = await ta.tdb.db.query<{ id: string }>(`SELECT id FROM subscription_event WHERE subscription_id = $1 AND type = 'Task'`, [subscriptionId]);
    t.same(
      events.rows.map((r) => r.id),
      [task.id],
      'the completed Task is queued for the township’s subscription',
    );
    t.equal((await op(`/fhir/Task/${task.id}/$complete`, county, { resourceType: 'Parameters', parameter: [{ name: 'report', resource: report }] })).statusCode, 409, 'completed once');
  });
}
