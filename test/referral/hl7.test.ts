/**
 * Referrals over HL7 v2 (src/referral/hl7.ts): a HIS that speaks only HL7 runs a referral end to
 * end through POST /ingest/hl7v2 — REF^I12 opens it (the same ServiceRequest and Task as a FHIR
 * one), RRI^I12 from the receiver moves it, REF^I14 from the sender cancels it — and every refusal
 * of the workflow or the level rules comes back as an ACK naming segment and field, kept as a dead
 * letter. The msft REF^I12 fixtures (no member institution named) stay plain referral records.
 */
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import type { Bundle, DiagnosticReport, PractitionerRole, ServiceRequest, Task } from '@medplum/fhirtypes';
import { engineMap, IngestPipeline, parseSenders, readEnvelope } from '../../src/ingest/index.js';
import { loadMappings } from '../../src/ingest/hl7v2/mapping/index.js';
import { DIRECTION_EXTENSION, LevelRules, OUTPUT_TYPE_SYSTEM, referralMap } from '../../src/referral/index.js';
import { BACKENDS } from '../helpers/db.js';
import { ackOf } from '../ingest/fixture.js';
import { COUNTY, openWorld, read, TOWNSHIP1, VILLAGE1, VILLAGE2, type World } from './fixture.js';

const HL7 = { 'content-type': 'x-application/hl7-v2+er7' };
/** MSH-3/MSH-4 of the demo senders (demo/hl7-senders.json). */
const VILLAGE_HIS = 'DHHIS|DHCWSS';
const TOWNSHIP_HIS = 'CGHIS|CGZWSY';
const CLIENT: Record<string, string> = { [VILLAGE_HIS]: 'village1-his', [TOWNSHIP_HIS]: 'township1-his' };

interface Ref {
  /** RF1-1 (status), RF1-3 (type, where vendors send UP/DOWN), RF1-6 (referral id). */
  status?: string;
  type?: string;
  id: string;
  priority?: string;
  referring?: string;
  referredTo?: string;
  icd10?: string;
  notes?: string[];
  report?: boolean;
  mrn?: string;
}

function message(sender: string, type: string, controlId: string, r: Ref): string {
  const [app, facility] = sender.split('|');
  const segs = [
    `MSH|^~\\&|${app}|${facility}|COUNTY-HIE|QS|20260310090000||${type}^${type.replace('^', '_')}|${controlId}|P|2.5||||||UNICODE UTF-8`,
    `RF1|${r.status ?? 'P^Pending^HL70283'}|${r.priority ?? 'R^Routine^HL70280'}|${r.type ?? ''}||O^Outpatient^HL70284|${r.id}^DHHIS|20260310|20260410|20260310`,
    ...(r.referring ? [`PRD|RP^Referring Provider^HL70286|王^医生|||||${r.referring}^USCC`] : []),
    ...(r.referredTo ? [`PRD|RT^Referred to Provider^HL70286|李^医生|||||${r.referredTo}^USCC`] : []),
    `PID|1||${r.mrn ?? 'V-7001'}^^^${facility}^MR||钱^转诊||19580712|M`,
    ...(r.icd10 ? [`DG1|1||${r.icd10}^肺炎^I10||20260310|F`] : []),
    ...(r.report ? ['OBR|1||BR-7001|18842-5^Discharge summary^LN|||20260320', 'OBX|1|TX|18842-5^Discharge summary^LN||肺炎已愈，回村卫生室随访||||||F'] : []),
    ...(r.notes ?? []).map((n, i) => `NTE|${i + 1}||${n}`),
  ];
  return segs.join('\r') + '\r';
}

async function post(w: World, sender: string, text: string): Promise<{ ack: ReturnType<typeof ackOf>; raw: string }> {
  const token = await w.ta.token(CLIENT[sender]);
  const res = await w.ta.app.inject({ method: 'POST', url: '/ingest/hl7v2', headers: { ...HL7, authorization: `Bearer ${token}` }, payload: Buffer.from(text, 'utf8') });
  if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}: ${res.body}`);
  return { ack: ackOf(res.rawPayload), raw: res.body };
}

async function referralOf(w: World, id: string): Promise<{ sr: ServiceRequest; task?: Task }> {
  const srs = (await w.ta.app.inject({ url: `/fhir/ServiceRequest?identifier=${encodeURIComponent(id)}` })).json() as Bundle<ServiceRequest>;
  const sr = srs.entry?.[0]?.resource as ServiceRequest;
  const tasks = (await w.ta.app.inject({ url: `/fhir/Task?focus=ServiceRequest/${sr.id}` })).json() as Bundle<Task>;
  return { sr, task: tasks.entry?.[0]?.resource };
}

async function deadLetters(w: World, controlId: string): Promise<{ error_code: string; error_location: string | null; error_text: string }[]> {
  const { rows } = await w.ta.tdb.db.query<{ error_code: string; error_location: string | null; error_text: string }>('SELECT error_code, error_location, error_text FROM dead_letter WHERE control_id = $1', [controlId]);
  return rows;
}

for (const backend of BACKENDS) {
  t.test(`HL7 v2 referrals (${backend})`, async (t) => {
    const w = await openWorld(backend);
    t.teardown(() => w.ta.close());
    await w.publishSlots(TOWNSHIP1, 2);

    await t.test('an up-referral village → township: REF^I12, accepted, started and completed by RRI^I12', async (t) => {
      const ref = message(VILLAGE_HIS, 'REF^I12', 'REF-1', { id: 'ZZ-1', type: 'UP^上转', referring: VILLAGE1, referredTo: TOWNSHIP1, icd10: 'J18.900', priority: 'A^ASAP' });
      const sent = await post(w, VILLAGE_HIS, ref);
      t.equal(sent.ack.code, 'AA', sent.ack.text);
      const { sr, task } = await referralOf(w, 'ZZ-1');
      t.equal(sr.extension?.find((e) => e.url === DIRECTION_EXTENSION)?.valueCode, 'up', 'direction from RF1-3');
      t.equal(sr.requester?.reference, `Organization/${w.org[VILLAGE1]}`, 'requester: the sender (PRD RP)');
      t.equal(sr.performer?.[0]?.reference, `Organization/${w.org[TOWNSHIP1]}`, 'performer: PRD RT');
      t.equal(sr.priority, 'asap', 'priority from RF1-2');
      t.ok(sr.reasonReference?.length, 'reason: the DG1 diagnosis');
      t.equal(task?.status, 'requested', 'the Task enters the workflow as requested');
      t.equal(task?.owner?.reference, `Organization/${w.org[TOWNSHIP1]}`);
      const roles = (await w.ta.app.inject({ url: `/fhir/PractitionerRole?role=http://terminology.hl7.org/CodeSystem/v2-0286|RT&organization=Organization/${w.org[TOWNSHIP1]}` })).json() as Bundle<PractitionerRole>;
      t.match(
        roles.entry?.map((e) => e.resource),
        [{ code: [{ coding: [{ code: 'RT' }] }], practitioner: { display: '李' }, organization: { reference: `Organization/${w.org[TOWNSHIP1]}` } }],
        'PRD RT: the referred-to doctor’s role at the township',
      );

      // asap is the green channel: accepted without a slot
      const accepted = await post(w, TOWNSHIP_HIS, message(TOWNSHIP_HIS, 'RRI^I12', 'RRI-1', { id: 'ZZ-1', status: 'A^Accepted^HL70283', mrn: 'T-7001' }));
      t.equal(accepted.ack.code, 'AA', accepted.ack.text);
      t.equal((await referralOf(w, 'ZZ-1')).task?.status, 'accepted');
      t.equal((await referralOf(w, 'ZZ-1')).task?.businessStatus?.coding?.[0]?.code, 'green-channel');

      t.equal((await post(w, TOWNSHIP_HIS, message(TOWNSHIP_HIS, 'RRI^I12', 'RRI-2', { id: 'ZZ-1', status: 'IP', mrn: 'T-7001' }))).ack.code, 'AA');
      const done = await post(w, TOWNSHIP_HIS, message(TOWNSHIP_HIS, 'RRI^I12', 'RRI-3', { id: 'ZZ-1', status: 'CM', mrn: 'T-7001', report: true }));
      t.equal(done.ack.code, 'AA', done.ack.text);
      const { task: completed } = await referralOf(w, 'ZZ-1');
      t.equal(completed?.status, 'completed');
      const back = completed?.output?.find((o) => o.type?.coding?.some((c) => c.system === OUTPUT_TYPE_SYSTEM && c.code === 'back-report'));
      t.match(back?.valueReference?.reference, /^DiagnosticReport\//, 'the results sent back are the back-report');
      t.equal((await read<DiagnosticReport>(w, back?.valueReference?.reference as string)).code?.coding?.[0]?.code, '18842-5');
    });

    await t.test('a routine up-referral books a reserved slot on acceptance; the direction comes from the levels', async (t) => {
      t.equal((await post(w, VILLAGE_HIS, message(VILLAGE_HIS, 'REF^I12', 'REF-2', { id: 'ZZ-2', referredTo: TOWNSHIP1, icd10: 'J44.100' }))).ack.code, 'AA');
      const { sr } = await referralOf(w, 'ZZ-2');
      t.equal(sr.extension?.find((e) => e.url === DIRECTION_EXTENSION)?.valueCode, 'up', 'village → township is up');
      t.equal(sr.requester?.reference, `Organization/${w.org[VILLAGE1]}`, 'without PRD RP the sender is the requester');
      const rri = message(TOWNSHIP_HIS, 'RRI^I12', 'RRI-4', { id: 'ZZ-2', status: 'A', mrn: 'T-7002', referring: VILLAGE1, referredTo: TOWNSHIP1 });
      t.equal((await post(w, TOWNSHIP_HIS, rri)).ack.code, 'AA');
      const { task } = await referralOf(w, 'ZZ-2');
      t.match(task?.output?.[0]?.valueReference?.reference, /^Appointment\//, 'an Appointment in a reserved slot');
      const roles = (await w.ta.app.inject({ url: `/fhir/PractitionerRole?role=http://terminology.hl7.org/CodeSystem/v2-0286|RP&organization=Organization/${w.org[VILLAGE1]}` })).json() as Bundle<PractitionerRole>;
      t.ok(
        roles.entry?.some((e) => e.resource?.identifier?.[0]?.value === 'ZZ-2|RP|52330424681045633Y' && e.resource.meta?.tag?.some((x) => x.code === TOWNSHIP1)),
        'the PRD RP of the answer: the referring doctor at the village clinic, as the township recorded it',
      );
    });

    await t.test('refused transitions are answered with ERR naming RF1-1 and kept as dead letters', async (t) => {
      t.equal((await post(w, VILLAGE_HIS, message(VILLAGE_HIS, 'REF^I12', 'REF-3', { id: 'ZZ-3', type: 'UP', referredTo: TOWNSHIP1, icd10: 'J18.900' }))).ack.code, 'AA');
      // requested → completed is no transition of the workflow
      const skip = await post(w, TOWNSHIP_HIS, message(TOWNSHIP_HIS, 'RRI^I12', 'RRI-5', { id: 'ZZ-3', status: 'CM', mrn: 'T-7003', report: true }));
      t.equal(skip.ack.code, 'AE');
      t.match(skip.ack.err?.[8], /A referral cannot go from requested to completed \(from requested: received, accepted, rejected, cancelled, on-hold\)/);
      t.match(skip.ack.err?.[2], /^RF1\^\d+\^1\b/, 'ERR-2 names RF1-1');
      t.match(await deadLetters(w, 'RRI-5'), [{ error_code: 'GW_ERR_BUSINESS_RULE', error_location: 'RF1-1' }]);
      // only the receiver accepts: the sending village may not
      const wrongSide = await post(w, VILLAGE_HIS, message(VILLAGE_HIS, 'RRI^I12', 'RRI-6', { id: 'ZZ-3', status: 'A' }));
      t.equal(wrongSide.ack.code, 'AR', 'a permission refusal, as everywhere in the gateway');
      t.match(wrongSide.ack.err?.[8], /Only the receiving institution \(1233042447102341XF\) may move a referral from requested to accepted/);
      t.match(await deadLetters(w, 'RRI-6'), [{ error_code: 'GW_ERR_FORBIDDEN', error_location: 'RF1-1' }]);
      // a rejection needs its reason; with one (NTE) it is stored
      t.equal((await post(w, TOWNSHIP_HIS, message(TOWNSHIP_HIS, 'RRI^I12', 'RRI-7', { id: 'ZZ-3', status: 'R', mrn: 'T-7003' }))).ack.code, 'AE');
      t.match(await deadLetters(w, 'RRI-7'), [{ error_location: 'RF1-10' }]);
      const rejected = await post(w, TOWNSHIP_HIS, message(TOWNSHIP_HIS, 'RRI^I12', 'RRI-8', { id: 'ZZ-3', status: 'R', mrn: 'T-7003', notes: ['本院呼吸科床位已满，请转县医院'] }));
      t.equal(rejected.ack.code, 'AA', rejected.ack.text);
      const { task } = await referralOf(w, 'ZZ-3');
      t.equal(task?.status, 'rejected');
      t.equal(task?.statusReason?.text, '本院呼吸科床位已满，请转县医院');
      // an answer to a referral nobody sent
      const unknown = await post(w, TOWNSHIP_HIS, message(TOWNSHIP_HIS, 'RRI^I12', 'RRI-9', { id: 'NO-SUCH', status: 'A', mrn: 'T-7003' }));
      t.equal(unknown.ack.code, 'AE');
      t.match(unknown.ack.err?.[2], /^RF1\^\d+\^6/);
      t.match(unknown.ack.err?.[3], /^204\^/);
    });

    await t.test('level rules: a village → village up-referral is refused with ERR naming PRD RT, kept for replay', async (t) => {
      const bad = await post(w, VILLAGE_HIS, message(VILLAGE_HIS, 'REF^I12', 'REF-4', { id: 'ZZ-4', type: 'UP', referring: VILLAGE1, referredTo: VILLAGE2, icd10: 'J18.900' }));
      t.equal(bad.ack.code, 'AE');
      t.match(bad.ack.err?.[8], /An up-referral must go to a higher level: village → village/);
      t.match(bad.ack.err?.[2], /^PRD\^\d+\^7/, 'ERR-2 names PRD-7 of the referred-to provider');
      const [dead] = await deadLetters(w, 'REF-4');
      t.match(dead, { error_code: 'GW_ERR_BUSINESS_RULE', error_location: 'PRD-7' });
      t.equal((await w.ta.app.inject({ url: '/fhir/ServiceRequest?identifier=ZZ-4' })).json().total ?? 0, 0, 'nothing stored');
      // a referred-to institution that is not in the community
      const stranger = await post(w, VILLAGE_HIS, message(VILLAGE_HIS, 'REF^I12', 'REF-5', { id: 'ZZ-5', type: 'UP', referredTo: '91330000MA2XXXXX0X', icd10: 'J18.900' }));
      t.equal(stranger.ack.code, 'AE');
      t.match(stranger.ack.err?.[8], /PRD-7.1: the referred-to institution "91330000MA2XXXXX0X" is not an institution of the community/);
      // the referring institution must be the sender's own
      const impostor = await post(w, VILLAGE_HIS, message(VILLAGE_HIS, 'REF^I12', 'REF-6', { id: 'ZZ-6', type: 'UP', referring: VILLAGE2, referredTo: TOWNSHIP1, icd10: 'J18.900' }));
      t.equal(impostor.ack.code, 'AE');
      t.match(impostor.ack.err?.[8], /PRD-7.1: the referring institution \(PRD-1 RP\) 52330424681056746X is not the sender's/);
      // a down-referral needs a condition the target level treats (county → township, I21 is not in its catalogue)
      const township = await w.ta.token('county-his');
      const down = await w.ta.app.inject({
        method: 'POST',
        url: '/ingest/hl7v2',
        headers: { ...HL7, authorization: `Bearer ${township}` },
        payload: message('QSHIS|QSXRMYY', 'REF^I12', 'REF-7', { id: 'ZZ-7', type: 'DOWN', referredTo: TOWNSHIP1, icd10: 'I21.900', mrn: 'C-7007' }),
      });
      t.match(ackOf(down.rawPayload), { code: 'AE' });
      t.match(ackOf(down.rawPayload).err?.[8], /The township level does not treat I21.900 according to the graded-diagnosis catalogue/);
      t.match(ackOf(down.rawPayload).err?.[2], /^PRD\^\d+\^7/);
    });

    await t.test('an acceptance with no reserved slot free is kept, and stored when replayed after slots are published', async (t) => {
      // the county hospital has published no slots yet
      const county = await w.ta.token('county-his');
      const referTo = message(VILLAGE_HIS, 'REF^I12', 'REF-12', { id: 'ZZ-12', type: 'UP', referredTo: COUNTY, icd10: 'I21.900' });
      t.equal((await post(w, VILLAGE_HIS, referTo)).ack.code, 'AA');
      const accept = await w.ta.app.inject({
        method: 'POST',
        url: '/ingest/hl7v2',
        headers: { ...HL7, authorization: `Bearer ${county}` },
        payload: message('QSHIS|QSXRMYY', 'RRI^I12', 'RRI-12', { id: 'ZZ-12', status: 'A', mrn: 'C-7012' }),
      });
      const ack = ackOf(accept.rawPayload);
      t.equal(ack.code, 'AE');
      t.match(ack.err?.[8], /No reserved referral slot is free at 1233042447101234XX/);
      t.match(ack.err?.[2], /^RF1\^\d+\^1/);
      const { rows } = await w.ta.tdb.db.query<{ id: number }>("SELECT id FROM dead_letter WHERE control_id = 'RRI-12'");
      t.equal((await referralOf(w, 'ZZ-12')).task?.status, 'requested', 'nothing changed');
      await w.publishSlots(COUNTY, 1);
      const replay = await w.ta.app.inject({ method: 'POST', url: `/ingest/dead-letters/${rows[0].id}/$replay` });
      t.equal(replay.statusCode, 200, replay.body);
      t.equal((await referralOf(w, 'ZZ-12')).task?.status, 'accepted', 'accepted once replayed');
    });

    await t.test('the same control id twice: the first ACK again, nothing written twice', async (t) => {
      const ref = message(VILLAGE_HIS, 'REF^I12', 'REF-8', { id: 'ZZ-8', type: 'UP', referredTo: TOWNSHIP1, icd10: 'J18.900' });
      const first = await post(w, VILLAGE_HIS, ref);
      const again = await post(w, VILLAGE_HIS, ref);
      t.equal(first.ack.code, 'AA');
      t.equal(again.raw, first.raw, 'the stored ACK is answered again');
      const { sr } = await referralOf(w, 'ZZ-8');
      const tasks = (await w.ta.app.inject({ url: `/fhir/Task?focus=ServiceRequest/${sr.id}` })).json() as Bundle;
      t.equal(tasks.entry?.length, 1, 'one Task');
      t.equal(sr.meta?.versionId, '1', 'the request written once');
      // a resend under a new control id (the same referral) updates the request, still one Task
      t.equal((await post(w, VILLAGE_HIS, ref.replace('|REF-8|', '|REF-8b|'))).ack.code, 'AA');
      t.equal(((await w.ta.app.inject({ url: `/fhir/Task?focus=ServiceRequest/${sr.id}` })).json() as Bundle).entry?.length, 1, 'still one Task');
      // an answer sent twice moves the Task once
      const rri = message(TOWNSHIP_HIS, 'RRI^I12', 'RRI-10', { id: 'ZZ-8', status: 'RC', mrn: 'T-7008' });
      t.equal((await post(w, TOWNSHIP_HIS, rri)).ack.code, 'AA');
      t.equal((await post(w, TOWNSHIP_HIS, rri)).ack.code, 'AA');
      const { task } = await referralOf(w, 'ZZ-8');
      t.equal(task?.status, 'received');
      t.equal(task?.meta?.versionId, '2', 'created, then received once');
    });

    await t.test('REF^I14: the sender cancels; the receiver may not', async (t) => {
      t.equal((await post(w, VILLAGE_HIS, message(VILLAGE_HIS, 'REF^I12', 'REF-9', { id: 'ZZ-9', type: 'UP', referredTo: TOWNSHIP1, icd10: 'J18.900' }))).ack.code, 'AA');
      const byReceiver = await post(w, TOWNSHIP_HIS, message(TOWNSHIP_HIS, 'REF^I14', 'REF-10', { id: 'ZZ-9', type: 'UP', referring: VILLAGE1, referredTo: TOWNSHIP1, icd10: 'J18.900', mrn: 'T-7009' }));
      t.equal(byReceiver.ack.code, 'AE', 'the township is not the referring institution');
      const cancel = await post(w, VILLAGE_HIS, message(VILLAGE_HIS, 'REF^I14', 'REF-11', { id: 'ZZ-9', type: 'UP', referredTo: TOWNSHIP1, icd10: 'J18.900', notes: ['患者已自行前往县医院'] }));
      t.equal(cancel.ack.code, 'AA', cancel.ack.text);
      const { sr, task } = await referralOf(w, 'ZZ-9');
      t.equal(task?.status, 'cancelled');
      t.equal(task?.statusReason?.text, '患者已自行前往县医院');
      t.equal(sr.status, 'revoked');
    });

    await t.test('the msft REF^I12 fixtures name no member institution: stored as plain referral records, as before', async (t) => {
      const dir = '/work/shared/fixtures/hl7v2/';
      const files = ['msft__REF-I12-01.hl7', 'msft__REF-I12-02.hl7'];
      const env = readEnvelope(readFileSync(dir + files[0]));
      const senders = parseSenders({ senders: [{ id: 'fixture', sendingApplication: env?.sendingApplication, sendingFacility: env?.sendingFacility, institution: COUNTY, defaultCharset: 'UTF-8' }] });
      const mappings = loadMappings('mappings/hl7v2');
      const spoolDir = mkdtempSync(join(tmpdir(), 'hl7-ref-'));
      t.teardown(() => rmSync(spoolDir, { recursive: true, force: true }));
      const map = referralMap(engineMap(mappings), { db: w.ta.tdb.db, senders, rules: LevelRules.load(), tables: mappings.forSite(undefined).tables });
      const pipeline = new IngestPipeline({ db: w.ta.tdb.db, fhir: w.ta.fhir, senders, map, spoolDir });
      for (const f of files) {
        const r = await pipeline.handleMessage(readFileSync(dir + f), { channel: 'mllp', remoteAddress: '127.0.0.1', localPort: 2575 });
        t.equal(ackOf(r.ack).code, 'AA', `${f}: ${ackOf(r.ack).text}`);
        t.equal(r.outcome, 'stored');
      }
      const { sr, task } = await referralOf(w, '226839');
      t.equal(sr.extension?.find((e) => e.url === DIRECTION_EXTENSION), undefined, 'no direction');
      t.equal(task, undefined, 'no workflow Task');
    });
  });
}
