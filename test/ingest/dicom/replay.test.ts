/**
 * A DICOM post the gateway fails to store (here identity linking fails: its table is gone) is kept
 * as a dead letter with its bytes and its retrieveUrl, answered 5xx, and once the gateway works
 * again the replay stores what the post would have: the study, its patient, the PACS Endpoint.
 * A replay refused again stays open; a replayed dead letter is not replayed twice.
 */
import t from 'tap';
import type { Bundle, Endpoint, ImagingStudy } from '@medplum/fhirtypes';
import { createTestApp } from '../../helpers/app.js';
import { BACKENDS } from '../../helpers/db.js';

const UID = '1.2.156.112605.88.1';
const RETRIEVE = 'https://pacs.chengguan.example/dicom-web';
const dataset = (uid: string, patientId?: string) =>
  JSON.stringify([
    {
      '0020000D': { vr: 'UI', Value: [uid] },
      '0020000E': { vr: 'UI', Value: [`${uid}.1`] },
      '00080018': { vr: 'UI', Value: [`${uid}.1.1`] },
      '00080016': { vr: 'UI', Value: ['1.2.840.10008.5.1.4.1.1.1.1'] },
      '00080060': { vr: 'CS', Value: ['DX'] },
      ...(patientId ? { '00100020': { vr: 'LO', Value: [patientId] } } : {}),
      '00100010': { vr: 'PN', Value: [{ Alphabetic: '赵^六' }] },
    },
  ]);

interface DeadLetterJson {
  id: number;
  status: string;
  attempts: number;
  messageType?: string;
  ackCode: string;
  errorCode: string;
  replayResult?: string;
}

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const ta = await createTestApp(backend);
    t.teardown(() => ta.close());
    const { app } = ta;
    const township = { authorization: `Bearer ${await ta.token('township1-his')}`, 'content-type': 'application/dicom+json' };
    const studies = async (uid: string) =>
      ((await app.inject({ url: `/fhir/ImagingStudy?identifier=${encodeURIComponent(`urn:dicom:uid|urn:oid:${uid}`)}` })).json<Bundle>().entry ?? []).map((e) => e.resource as ImagingStudy);
    const deadLetters = async () => (await app.inject({ url: '/ingest/dead-letters?type=DICOM-JSON&_count=50' })).json<{ items: DeadLetterJson[] }>().items;
    const replay = (id: number) => app.inject({ method: 'POST', url: `/ingest/dead-letters/${id}/$replay` });

    // Identity linking fails: every Patient write does, and with it the post.
    await ta.tdb.db.exec('ALTER TABLE mpi_block RENAME TO mpi_block_away');
    const failed = await app.inject({ method: 'POST', url: `/ingest/dicom?retrieveUrl=${encodeURIComponent(RETRIEVE)}`, headers: township, payload: dataset(UID, 'CG-00777') });
    t.ok(failed.statusCode >= 500, `the post fails: ${failed.statusCode}`);
    t.same(await studies(UID), [], 'nothing stored');
    const [kept] = await deadLetters();
    t.ok(kept, 'kept as a dead letter');
    t.equal(kept.status, 'new');
    t.equal(kept.ackCode, 'AE', 'a failure of the gateway, not a refusal of the post');
    const detail = (await app.inject({ url: `/ingest/dead-letters/${kept.id}` })).json<{ raw: string }>();
    t.equal(Buffer.from(detail.raw, 'base64').toString('utf8'), dataset(UID, 'CG-00777'), 'with the bytes as posted');

    // Replayed while still failing: an error, and it stays open.
    const early = await replay(kept.id);
    t.ok(early.statusCode >= 500, `the replay fails too: ${early.statusCode}`);
    t.equal((await deadLetters())[0].status, 'new');

    await ta.tdb.db.exec('ALTER TABLE mpi_block_away RENAME TO mpi_block');
    const done = await replay(kept.id);
    t.equal(done.statusCode, 200, done.body.slice(0, 300));
    t.equal(done.json<{ outcome: string }>().outcome, 'stored');
    const [study] = await studies(UID);
    t.ok(study, 'the study is stored by the replay');
    t.equal(study?.numberOfInstances, 1);
    t.ok(study?.subject.reference?.startsWith('Patient/'), 'with its patient');
    const endpoint = (await app.inject({ url: `/fhir/${study?.endpoint?.[0]?.reference as string}` })).json<Endpoint>();
    t.match(endpoint.address, RETRIEVE, 'the retrieveUrl of the post is used again');
    const after = (await deadLetters()).find((d) => d.id === kept.id);
    t.equal(after?.status, 'replayed');
    t.match(after?.replayResult, /^stored \(.*ImagingStudy\//);
    t.equal((await replay(kept.id)).statusCode, 409, 'replayed once');

    // A post refused for its content: kept, and refused again on replay (it stays open).
    const refused = await app.inject({ method: 'POST', url: '/ingest/dicom', headers: township, payload: dataset('1.2.156.112605.88.2') });
    t.equal(refused.statusCode, 422, refused.body.slice(0, 300));
    const open = (await deadLetters()).find((d) => d.status === 'new');
    t.equal(open?.ackCode, 'AR');
    const again = await replay(open?.id as number);
    t.equal(again.statusCode, 200);
    t.equal(again.json<{ outcome: string }>().outcome, 'rejected');
    t.match(again.json<{ errorText: string }>().errorText, /\(0010,0020\) PatientID/);
    const still = (await deadLetters()).find((d) => d.id === open?.id);
    t.equal(still?.status, 'new');
    t.equal(still?.attempts, 1);
  });
}
