/**
 * Every DICOM fixture of ../shared/fixtures/dicom posted to /ingest/dicom, its outcome pinned:
 * the ImagingStudy's UIDs, modality, series and instance counts equal what pydicom reads from the
 * files (ATTRIBUTES.pydicom.json; no_meta.dcm, which pydicom misreads, is the CT_small dataset) and
 * what the DICOM JSON files say; files that cannot be stored get a 4xx naming the tag.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import type { Bundle, Endpoint, ImagingStudy, OperationOutcome, Patient } from '@medplum/fhirtypes';
import { createTestApp, FHIR_HEADERS } from '../../helpers/app.js';
import { BACKENDS } from '../../helpers/db.js';
import { mrnSystem } from '../../../src/fhir/systems.js';
import { accessionSystem } from '../../../src/ingest/index.js';

const DIR = new URL('../../../../shared/fixtures/dicom/', import.meta.url);
const fixture = (name: string) => readFileSync(new URL(name, DIR));
type Attrs = Record<string, string | boolean | undefined>;
const PYDICOM = (JSON.parse(fixture('ATTRIBUTES.pydicom.json').toString('utf8')) as { files: Record<string, Attrs> }).files;
const expected = (file: string): Attrs => (file === 'pydicom__no_meta.dcm' ? PYDICOM['pydicom__CT_small.dcm'] : PYDICOM[file]);

const TOWNSHIP = '1233042447102341XF';
const STORED = [
  'dcmjs__sample-sr.dcm',
  'dcmjs__sample-dicom.dcm',
  'pydicom__CT_small.dcm',
  'pydicom__MR_small.dcm',
  'pydicom__MR_small_implicit.dcm',
  'pydicom__MR_small_bigendian.dcm',
  'pydicom__no_meta.dcm',
  'pydicom__JPEG2000.dcm',
  'dicomParser__CT1_UNC.explicit_big_endian.dcm',
];
/** Files refused, with the status and the tag the answer names. */
const REFUSED: Record<string, [number, string]> = {
  'pydicom__meta_missing_tsyntax.dcm': [400, '(0002,0010)'],
  'pydicom__badVR.dcm': [400, '(0028,0008)'],
  'pydicom__empty_charset_LEI.dcm': [422, '(0020,000D) StudyInstanceUID'],
  'pydicom__test-SR.dcm': [422, '(0010,0020) PatientID'],
  'pydicom__reportsi.dcm': [422, '(0010,0020) PatientID'],
  'pydicom__image_dfl.dcm': [422, '(0010,0020) PatientID'],
  'dcmjs__no-meta-length-test.dcm': [422, '(0010,0020) PatientID'],
};

const dicomJson = (name: string) => JSON.parse(fixture(name).toString('utf8')) as Record<string, { Value?: unknown[] }> | Record<string, { Value?: unknown[] }>[];
const value = (ds: Record<string, { Value?: unknown[] }>, tag: string) => ds[tag]?.Value?.[0];

t.test('the fixture list covers every .dcm file', async (t) => {
  const files = readFileSync(new URL('MANIFEST.tsv', DIR), 'utf8')
    .split('\n')
    .map((l) => l.split('\t')[0])
    .filter((f) => f.endsWith('.dcm'));
  t.same([...STORED, ...Object.keys(REFUSED)].sort(), files.sort());
});

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const ta = await createTestApp(backend);
    t.teardown(() => ta.close());
    const { app } = ta;
    const township = { authorization: `Bearer ${await ta.token('township1-his')}` };
    const post = (payload: Buffer | string, type: string, headers: Record<string, string> = township, query = '') =>
      app.inject({ method: 'POST', url: `/ingest/dicom${query}`, headers: { 'content-type': type, ...headers }, payload });
    const studyOf = async (uid: string): Promise<ImagingStudy | undefined> => {
      const res = await app.inject({ url: `/fhir/ImagingStudy?identifier=${encodeURIComponent(`urn:dicom:uid|urn:oid:${uid}`)}` });
      const b = res.json<Bundle>();
      t.ok((b.total ?? b.entry?.length ?? 0) <= 1, `one ImagingStudy for ${uid}`);
      return b.entry?.[0]?.resource as ImagingStudy | undefined;
    };

    await t.test('Part 10 files: stored as pydicom reads them, or refused naming the tag', async (t) => {
      for (const file of STORED) {
        const res = await post(fixture(file), 'application/dicom');
        t.equal(res.statusCode, 200, `${file}: ${res.body.slice(0, 300)}`);
      }
      // Expected studies computed from pydicom's reading: distinct series and instances per study UID.
      const studies = new Map<string, { series: Set<string>; instances: Map<string, Attrs> }>();
      for (const file of STORED) {
        const a = expected(file);
        const s = studies.get(a.StudyInstanceUID as string) ?? { series: new Set(), instances: new Map() };
        s.series.add(a.SeriesInstanceUID as string);
        s.instances.set(a.SOPInstanceUID as string, a);
        studies.set(a.StudyInstanceUID as string, s);
      }
      t.equal(studies.size, 6, 'the MR_small encodings and no_meta/CT_small are the same instances');
      for (const [uid, s] of studies) {
        const study = await studyOf(uid);
        if (!study) {
          t.fail(`no ImagingStudy for ${uid}`);
          continue;
        }
        t.equal(study.numberOfSeries, s.series.size, `${uid} series count`);
        t.equal(study.numberOfInstances, s.instances.size, `${uid} instance count`);
        t.same(study.series?.map((x) => x.uid).sort(), [...s.series].sort(), `${uid} series UIDs`);
        for (const a of s.instances.values()) {
          const series = study.series?.find((x) => x.uid === a.SeriesInstanceUID);
          t.equal(series?.modality.code, a.Modality, `${uid} modality`);
          const inst = series?.instance?.find((i) => i.uid === a.SOPInstanceUID);
          t.ok(inst, `instance ${a.SOPInstanceUID as string}`);
          t.equal(inst?.sopClass.code, `urn:oid:${a.SOPClassUID as string}`);
          if (a.InstanceNumber && a.InstanceNumber !== 'None') t.equal(inst?.number, Number(a.InstanceNumber));
          if (a.SeriesNumber) t.equal(series?.number, Number(a.SeriesNumber));
          if (a.StudyDate) t.match(study.started, new RegExp(`^${(a.StudyDate as string).replace(/(\d{4})(\d{2})(\d{2})/, '$1-$2-$3')}`));
          const acsn = study.identifier?.find((i) => i.type?.coding?.[0]?.code === 'ACSN');
          t.equal(acsn?.value, a.AccessionNumber || undefined, 'accession number');
          if (acsn) t.equal(acsn.system, accessionSystem(TOWNSHIP));
        }
        t.same(study.meta?.tag?.find((x) => x.code === TOWNSHIP)?.code, TOWNSHIP);
        const patient = (await app.inject({ url: `/fhir/${study.subject.reference as string}` })).json<Patient>();
        const first = [...s.instances.values()][0];
        t.same(patient.identifier?.[0], { type: patient.identifier?.[0]?.type, system: mrnSystem(TOWNSHIP), value: first.PatientID }, `${uid} patient`);
      }
      const mr = await studyOf(expected('dcmjs__sample-dicom.dcm').StudyInstanceUID as string);
      t.equal(mr?.referrer?.display, 'Dr. Anonymous');
      t.equal(mr?.description, 'MRT Oberbauch');
      t.equal(mr?.started, '2001-01-01T10:22:31+08:00');

      for (const [file, [status, tag]] of Object.entries(REFUSED)) {
        const res = await post(fixture(file), 'application/dicom');
        t.equal(res.statusCode, status, `${file}: ${res.body.slice(0, 300)}`);
        const oo = res.json<OperationOutcome>();
        t.equal(oo.resourceType, 'OperationOutcome');
        t.ok(oo.issue[0].expression?.[0]?.startsWith(tag), `${file} names ${tag}: ${oo.issue[0].expression?.[0]}`);
        t.match(oo.issue[0].diagnostics, tag.slice(0, 11));
      }
      const dead = (await app.inject({ url: '/ingest/dead-letters?type=DICOM&_count=50' })).json<{ items: { errorLocation?: string; clientId?: string }[] }>();
      t.equal(dead.items.length, Object.keys(REFUSED).length, 'each refused file is kept as a dead letter');
      t.ok(dead.items.every((d) => d.clientId === 'township1-his'));
      const first = (await app.inject({ url: '/ingest/dead-letters?type=DICOM&_count=1' })).json<{ items: { id: number; errorLocation?: string }[] }>().items[0];
      const replay = await app.inject({ method: 'POST', url: `/ingest/dead-letters/${first.id}/$replay` });
      t.equal(replay.statusCode, 200, 'a DICOM dead letter is replayed as a DICOM post');
      const again = replay.json<{ outcome: string; errorText?: string }>();
      t.equal(again.outcome, 'rejected', 'refused again: nothing has been fixed');
      t.match(again.errorText, (first.errorLocation ?? '').slice(0, 11), 'naming the same tag');
    });

    await t.test('DICOM JSON: QIDO-RS study results, instance metadata, merge with the Part 10 copies', async (t) => {
      const qido = dicomJson('dcmjs__arrayItem.qido-studies.json') as Record<string, { Value?: unknown[] }>[];
      const res = await post(fixture('dcmjs__arrayItem.qido-studies.json'), 'application/dicom+json');
      t.equal(res.statusCode, 200, res.body.slice(0, 300));
      for (const ds of qido) {
        const study = await studyOf(value(ds, '0020000D') as string);
        t.equal(study?.numberOfSeries, value(ds, '00201206'));
        t.equal(study?.numberOfInstances, value(ds, '00201208'));
        t.same(study?.modality?.map((m) => m.code).sort(), (ds['00080061'].Value as string[]).slice().sort());
        t.equal(study?.identifier?.find((i) => i.type?.coding?.[0]?.code === 'ACSN')?.value, value(ds, '00080050'));
        t.notOk(study?.series, 'a study-level result lists no series');
      }
      for (const [file, pair] of [
        ['dcmjs__sample-dicom.json', 'dcmjs__sample-dicom.dcm'],
        ['dcmjs__sample-sr.json', 'dcmjs__sample-sr.dcm'],
      ]) {
        const r = await post(fixture(file), 'application/json');
        t.equal(r.statusCode, 200, `${file}: ${r.body.slice(0, 300)}`);
        const study = await studyOf(expected(pair).StudyInstanceUID as string);
        t.equal(study?.numberOfInstances, 1, `${file} is the instance of ${pair}: merged, not doubled`);
        t.equal(study?.series?.[0].instance?.length, 1);
      }
      const test1 = dicomJson('pydicom__test1.json') as Record<string, { Value?: unknown[] }>;
      t.equal((await post(fixture('pydicom__test1.json'), 'application/dicom+json')).statusCode, 200);
      const s1 = await studyOf(value(test1, '0020000D') as string);
      t.equal(s1?.series?.[0].uid, value(test1, '0020000E'));
      t.equal(s1?.series?.[0].instance?.[0].uid, value(test1, '00080018'));
      t.equal(s1?.series?.[0].modality.code, 'MR');
      t.equal(s1?.series?.[0].number, value(test1, '00200011'));

      const pn = await post(fixture('pydicom__test_PN.json'), 'application/dicom+json');
      t.equal(pn.statusCode, 422);
      t.match(pn.json<OperationOutcome>().issue[0].expression?.[0], '(0020,000D)');
    });

    await t.test('instances of one study in several posts merge; a resend duplicates nothing; the retrieve URL is an Endpoint', async (t) => {
      const inst = (sop: string, series: string) => ({
        '0020000D': { vr: 'UI', Value: ['1.2.156.112605.9.1'] },
        '0020000E': { vr: 'UI', Value: [series] },
        '00080018': { vr: 'UI', Value: [sop] },
        '00080016': { vr: 'UI', Value: ['1.2.840.10008.5.1.4.1.1.1.1'] },
        '00080060': { vr: 'CS', Value: ['DX'] },
        '00100020': { vr: 'LO', Value: ['T1-0001'] },
        '00100010': { vr: 'PN', Value: [{ Alphabetic: '张^三' }] },
        '00180015': { vr: 'CS', Value: ['CHEST'] },
        '00081190': { vr: 'UR', Value: ['https://pacs.township1.example/dicom-web/studies/1.2.156.112605.9.1'] },
      });
      t.equal((await post(JSON.stringify([inst('1.2.156.112605.9.1.1.1', '1.2.156.112605.9.1.1')]), 'application/dicom+json')).statusCode, 200);
      const second = JSON.stringify([inst('1.2.156.112605.9.1.1.2', '1.2.156.112605.9.1.1'), inst('1.2.156.112605.9.1.2.1', '1.2.156.112605.9.1.2')]);
      t.equal((await post(second, 'application/dicom+json')).statusCode, 200);
      t.equal((await post(second, 'application/dicom+json')).statusCode, 200, 'resent');
      const study = await studyOf('1.2.156.112605.9.1');
      t.equal(study?.numberOfSeries, 2);
      t.equal(study?.numberOfInstances, 3);
      t.same(study?.series?.map((s) => s.numberOfInstances), [2, 1]);
      t.equal(study?.series?.[0].bodySite?.code, 'CHEST');
      const endpoint = (await app.inject({ url: `/fhir/${study?.endpoint?.[0].reference as string}` })).json<Endpoint>();
      t.equal(endpoint.address, 'https://pacs.township1.example/dicom-web');
      t.equal(endpoint.connectionType.code, 'dicom-wado-rs');
      const endpoints = (await app.inject({ url: '/fhir/Endpoint?connection-type=dicom-wado-rs' })).json<Bundle>();
      t.equal(endpoints.entry?.length, 1, 'one Endpoint per PACS');
      const patient = (await app.inject({ url: `/fhir/${study?.subject.reference as string}` })).json<Patient>();
      t.equal(patient.name?.[0].family, '张');
    });

    await t.test('the accession number links the study to its ServiceRequest; a Part 10 post takes ?retrieveUrl', async (t) => {
      const a = expected('dcmjs__sample-dicom.dcm');
      const sr = await app.inject({
        method: 'POST',
        url: '/fhir/ServiceRequest',
        headers: { ...FHIR_HEADERS, ...township },
        payload: {
          resourceType: 'ServiceRequest',
          status: 'active',
          intent: 'order',
          identifier: [{ system: accessionSystem(TOWNSHIP), value: a.AccessionNumber }],
          code: { text: 'MR upper abdomen' },
          subject: { reference: (await studyOf(a.StudyInstanceUID as string))?.subject.reference },
        },
      });
      t.equal(sr.statusCode, 201, sr.body.slice(0, 300));
      const res = await post(fixture('dcmjs__sample-dicom.dcm'), 'application/dicom', township, '?retrieveUrl=https%3A%2F%2Fpacs.example%2Fwado');
      t.equal(res.statusCode, 200, res.body.slice(0, 300));
      const study = await studyOf(a.StudyInstanceUID as string);
      t.equal(study?.basedOn?.[0].reference, `ServiceRequest/${sr.json<{ id: string }>().id}`);
      t.equal(study?.numberOfInstances, 1);
      t.ok(study?.endpoint?.length === 1);
    });

    await t.test('refusals: a client of no institution, a wrong media type, bad JSON', async (t) => {
      const admin = await post(fixture('pydicom__CT_small.dcm'), 'application/dicom', {});
      t.equal(admin.statusCode, 403, 'the administrator acts for no institution');
      t.equal((await post('x', 'text/plain')).statusCode, 415);
      const bad = await post('{"0020000D": ', 'application/dicom+json');
      t.equal(bad.statusCode, 400);
      const notTag = await post('{"StudyInstanceUID": {"vr": "UI", "Value": ["1.2"]}}', 'application/dicom+json');
      t.equal(notTag.statusCode, 400);
      t.match(notTag.json<OperationOutcome>().issue[0].diagnostics, 'not a DICOM tag');
      t.equal((await post('Not DICOM at all, just some text bytes here', 'application/dicom')).statusCode, 400);
    });
  });
}
