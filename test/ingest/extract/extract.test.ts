/**
 * HIS extracts: a GBK CSV of lab results with 3 malformed rows (reported by row number and field,
 * kept as dead letters, every other row loaded), a reload that duplicates nothing, the other kinds
 * (patients, visits, diagnoses, prescriptions with a long prescription), the job record and the
 * refusals.
 */
import t from 'tap';
import iconv from 'iconv-lite';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Bundle, Condition, Encounter, MedicationRequest, Observation, Patient } from '@medplum/fhirtypes';
import { createTestApp, TEST_BASE } from '../../helpers/app.js';
import { loadConfig } from '../../../src/config.js';
import { createLogger } from '../../../src/logger.js';
import { buildApp } from '../../../src/app.js';
import { BACKENDS } from '../../helpers/db.js';
import { mrnSystem } from '../../../src/fhir/systems.js';
import { extractSystem, loadExtractMappings, type Job } from '../../../src/ingest/index.js';
import { BATCH_ROWS, BATCHES_IN_FLIGHT } from '../../../src/ingest/extract/index.js';

const TOWNSHIP = '1233042447102341XF';
const HEADER = 'report_no,item_code,item_name,mrn,patient_name,value,unit,ref_low,ref_high,flag,result_time';

/** 20 data rows; rows 5, 11 and 17 are malformed (a bad number, a missing report number, a short row). */
function labCsv(): { text: string; bad: Record<number, string>; good: number } {
  const lines = [HEADER];
  const bad: Record<number, string> = {};
  for (let i = 1; i <= 20; i++) {
    const mrn = `LAB${String(i % 4).padStart(3, '0')}`;
    if (i === 5) {
      lines.push(`R${i},GLU,空腹血糖,${mrn},王${i},5.${i},mmol/L,三点九,6.1,N,2026-11-20 08:${String(i).padStart(2, '0')}`);
      bad[i] = 'ref_low';
    } else if (i === 11) {
      lines.push(`,GLU,空腹血糖,${mrn},王${i},5.${i},mmol/L,3.9,6.1,N,2026-11-20 08:${String(i).padStart(2, '0')}`);
      bad[i] = 'report_no';
    } else if (i === 17) {
      lines.push(`R${i},GLU,空腹血糖,${mrn}`);
      bad[i] = '';
    } else {
      lines.push(`R${i},GLU,"空腹血糖, 静脉",${mrn},王${i},${i % 3 === 0 ? '阴性' : `5.${i}`},mmol/L,3.9,6.1,${i % 2 ? 'N' : 'H'},2026-11-20 08:${String(i).padStart(2, '0')}:00`);
    }
  }
  return { text: lines.join('\r\n') + '\r\n', bad, good: 17 };
}

t.test('mapping files are schema-checked; a bad one fails', async (t) => {
  const m = loadExtractMappings();
  t.same([...m.keys()].sort(), ['diagnoses', 'lab-results', 'patients', 'prescriptions', 'visits']);
  const dir = mkdtempSync(join(tmpdir(), 'extract-map-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  copyFileSync(new URL('../../../mappings/extract/extract.schema.json', import.meta.url), join(dir, 'extract.schema.json'));
  writeFileSync(join(dir, 'labs.json'), JSON.stringify({ kind: 'labs', resourceType: 'Observation', columns: [{ name: 'x', type: 'money' }] }));
  t.throws(() => loadExtractMappings(dir), { name: 'ExtractMappingError', message: /labs.json: \/columns\/0\/type/ });
});

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const ta = await createTestApp(backend);
    t.teardown(() => ta.close());
    const { app } = ta;
    const township = { authorization: `Bearer ${await ta.token('township1-his')}` };
    const other = { authorization: `Bearer ${await ta.token('township2-his')}` };
    const post = (kind: string, payload: string | Buffer, type: string, headers = township) => app.inject({ method: 'POST', url: `/ingest/extract/${kind}`, headers: { ...headers, 'content-type': type }, payload });
    const search = async <T>(q: string): Promise<T[]> => ((await app.inject({ url: `/fhir/${q}`, headers: township })).json<Bundle>().entry ?? []).map((e) => e.resource as T);

    await t.test('a GBK CSV of lab results: 3 malformed rows rejected by row and field, the rest loaded', async (t) => {
      const { text, bad, good } = labCsv();
      const res = await post('lab-results', iconv.encode(text, 'gbk'), 'text/csv; charset=GBK');
      t.equal(res.statusCode, 200, res.body.slice(0, 400));
      const job = res.json<Job>();
      t.match(job, { kind: 'lab-results', status: 'done', rowsRead: 20, rowsStored: good, rowsRejected: 3, charset: 'GBK', format: 'csv' });
      t.equal(res.headers.location, `/ingest/jobs/${job.id}`);
      const obs = await search<Observation>(`Observation?identifier=${encodeURIComponent(`${extractSystem('lab-result', TOWNSHIP)}|`)}&_count=100`);
      t.equal(obs.length, good, 'every good row stored');
      const r3 = obs.find((o) => o.identifier?.[0].value === 'R3|GLU');
      t.equal(r3?.valueString, '阴性', 'GBK decoded');
      t.equal(r3?.code.text, '空腹血糖, 静脉', 'quoted field with a comma');
      const r2 = obs.find((o) => o.identifier?.[0].value === 'R2|GLU');
      t.same(r2?.valueQuantity, { value: 5.2, unit: 'mmol/L' });
      t.equal(r2?.effectiveDateTime, '2026-11-20T08:02:00+08:00');
      t.equal(r2?.interpretation?.[0].coding?.[0].code, 'H');
      const patients = await search<Patient>(`Patient?identifier=${encodeURIComponent(`${mrnSystem(TOWNSHIP)}|`)}&_count=100`);
      t.equal(patients.length, 4, 'one patient per MRN');

      const dead = (await app.inject({ url: '/ingest/dead-letters?type=EXTRACT%20lab-results&_count=50' })).json<{ items: { controlId: string; errorText: string; errorLocation: string }[] }>();
      t.equal(dead.items.length, 3);
      for (const [row, field] of Object.entries(bad)) {
        const d = dead.items.find((x) => x.controlId === `${job.id}#${row}`);
        t.ok(d, `row ${row} kept`);
        t.equal(d?.errorLocation, field ? `row ${row}.${field}` : `row ${row}`);
        t.match(d?.errorText, new RegExp(`^row ${row}: `));
        if (field) t.match(d?.errorText, field);
      }
      const again = await post('lab-results', iconv.encode(text, 'gbk'), 'text/csv; charset=GBK');
      t.match(again.json<Job>(), { rowsStored: good, rowsRejected: 3 });
      t.equal((await search<Observation>(`Observation?identifier=${encodeURIComponent(`${extractSystem('lab-result', TOWNSHIP)}|`)}&_count=100`)).length, good, 'a reload duplicates nothing');

      const seen = await app.inject({ url: `/ingest/jobs/${job.id}`, headers: township });
      t.match(seen.json<Job>(), { id: job.id, rowsRead: 20, rowsStored: good, rowsRejected: 3, status: 'done' });
      t.equal((await app.inject({ url: `/ingest/jobs/${job.id}`, headers: other })).statusCode, 404, 'another institution does not see the job');
      const list = (await app.inject({ url: '/ingest/jobs', headers: township })).json<{ items: Job[] }>();
      t.equal(list.items.length, 2);
    });

    await t.test('batches committing together keep file order: a key repeated in a later batch ends with its last row, a new MRN in two batches is one patient', async (t) => {
      // Rows over BATCH_ROWS * BATCHES_IN_FLIGHT + 1 batches: the same result (report B1, item GLU)
      // in the first batch, the second and the last, each time a new value; the MRNs first seen in
      // the first batch come again in every later one.
      const rows = BATCH_ROWS * BATCHES_IN_FLIGHT + 10;
      const repeated = [1, BATCH_ROWS + 3, rows];
      const lines = [HEADER];
      for (let i = 1; i <= rows; i++) {
        const report = repeated.includes(i) ? 'B1' : `B${i + 1}`;
        const value = repeated.includes(i) ? String(repeated.indexOf(i) + 7) : '5.5';
        lines.push(`${report},GLU,空腹血糖,BAT${i % 7},王${i % 7},${value},mmol/L,3.9,6.1,N,2026-11-21 08:00`);
      }
      const res = await post('lab-results', lines.join('\n') + '\n', 'text/csv');
      t.match(res.json<Job>(), { status: 'done', rowsRead: rows, rowsStored: rows, rowsRejected: 0 });
      // The value holds `|`: escaped in the search.
      const system = encodeURIComponent(`${extractSystem('lab-result', TOWNSHIP)}|B1\\|GLU`);
      const [b1] = await search<Observation>(`Observation?identifier=${system}`);
      t.equal(b1?.valueQuantity?.value, repeated.length + 6, 'the last row of the key is the value stored');
      const history = (await app.inject({ url: `/fhir/Observation/${b1?.id as string}/_history`, headers: township })).json<Bundle>();
      t.equal(history.entry?.length, repeated.length, 'one version per row, in file order');
      const patients = await search<Patient>(`Patient?identifier=${encodeURIComponent(`${mrnSystem(TOWNSHIP)}|`)}&_count=100`);
      t.same(patients.map((p) => p.identifier?.[0].value).filter((v) => v?.startsWith('BAT')).sort(), ['BAT0', 'BAT1', 'BAT2', 'BAT3', 'BAT4', 'BAT5', 'BAT6'], 'one patient per MRN');
    });

    await t.test('patients, visits, diagnoses and prescriptions (a long prescription keeps its duration)', async (t) => {
      const patients = 'mrn,name,id_card,gender,birth_date,phone,address\nP001,赵六,,F,1958-03-02,13800000000,城关镇东河村\nP002,钱七,,M,19600101,,\n';
      t.match((await post('patients', patients, 'text/csv')).json<Job>(), { rowsStored: 2, rowsRejected: 0 });
      const p1 = (await search<Patient>(`Patient?identifier=${encodeURIComponent(`${mrnSystem(TOWNSHIP)}|P001`)}`))[0];
      t.match(p1, { gender: 'female', birthDate: '1958-03-02', name: [{ text: '赵六' }] });
      const visits = 'visit_no,mrn,class,start,end,department\nV1,P001,outpatient,2026-11-01 09:00,2026-11-01 09:30,全科\nV2,P002,ward,2026-11-02 10:00,,\n';
      const vj = (await post('visits', visits, 'text/csv; charset=utf-8')).json<Job>();
      t.match(vj, { rowsStored: 1, rowsRejected: 1 });
      const v1 = (await search<Encounter>(`Encounter?identifier=${encodeURIComponent(`${extractSystem('visit', TOWNSHIP)}|V1`)}`))[0];
      t.match(v1, { status: 'finished', class: { code: 'AMB' }, subject: { reference: `Patient/${p1.id}` } });
      const dx = 'visit_no,seq,mrn,icd10,name,primary,recorded\nV1,1,P001,I10,原发性高血压,1,2026-11-01 09:20\n';
      t.match((await post('diagnoses', dx, 'text/csv')).json<Job>(), { rowsStored: 1 });
      const c = (await search<Condition>(`Condition?subject=Patient/${p1.id}`))[0];
      t.equal(c.code?.coding?.[0].code, 'I10');
      t.same(c.encounter, { identifier: { system: extractSystem('visit', TOWNSHIP), value: 'V1' } });
      const rx = [
        { rx_no: 'RX1', item: 1, mrn: 'P001', visit_no: 'V1', drug_code: 'D0101', drug_name: '氨氯地平片 5mg', dose: 5, dose_unit: 'mg', frequency: 'qd', days: 84, long_term: true, authored: '2026-11-01 09:25' },
        { rx_no: 'RX1', item: 2, mrn: 'P001', drug_code: 'D0102', drug_name: '阿司匹林肠溶片', days: 'seven', authored: '2026-11-01 09:25' },
        'not json',
      ];
      const nd = rx.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n');
      const rj = (await post('prescriptions', nd, 'application/x-ndjson')).json<Job>();
      t.match(rj, { format: 'ndjson', rowsRead: 3, rowsStored: 1, rowsRejected: 2 });
      const mr = (await search<MedicationRequest>(`MedicationRequest?subject=Patient/${p1.id}`))[0];
      t.equal(mr.courseOfTherapyType?.coding?.[0].code, 'continuous');
      t.equal(mr.courseOfTherapyType?.text, '长处方');
      t.same(mr.dispenseRequest?.expectedSupplyDuration, { value: 84, unit: 'd', system: 'http://unitsofmeasure.org', code: 'd' });
    });

    await t.test('a rejected row is replayed after its kind is fixed, and leaves the open dead letters', async (t) => {
      const long = '阿'.repeat(120);
      const csv = await post('patients', `mrn,name,gender\nRP1,${long},F\nRP2,孙丽,F\n`, 'text/csv');
      t.match(csv.json<Job>(), { rowsStored: 1, rowsRejected: 1 });
      const nd = await post('patients', JSON.stringify({ mrn: 'RP3', name: long }), 'application/x-ndjson');
      t.match(nd.json<Job>(), { rowsStored: 0, rowsRejected: 1 });
      const open = async (a = app, headers: Record<string, string> = {}) => (await a.inject({ url: '/ingest/dead-letters?type=EXTRACT%20patients&status=new&_count=50', headers })).json<{ items: { id: number; controlId: string; attempts: number }[] }>().items;
      const kept = (await open()).filter((d) => d.controlId.startsWith(`${csv.json<Job>().id}#`) || d.controlId.startsWith(`${nd.json<Job>().id}#`));
      t.equal(kept.length, 2, 'both rows kept');

      // Replayed before the fix: rejected again, still open, the attempt counted.
      const early = await app.inject({ method: 'POST', url: `/ingest/dead-letters/${kept[0].id}/$replay` });
      t.equal(early.statusCode, 200, early.body);
      t.match(early.json(), { id: kept[0].id, outcome: 'rejected', errorCode: 'GW_ERR_BAD_REQUEST', errorText: /longer than 100/ });
      t.match((await open()).find((d) => d.id === kept[0].id), { attempts: 1 });

      // The county raises the limit of the name column; the gateway restarts with it.
      const dir = mkdtempSync(join(tmpdir(), 'extract-fix-'));
      t.teardown(() => rmSync(dir, { recursive: true, force: true }));
      const mappings = new URL('../../../mappings/extract/', import.meta.url);
      for (const f of ['extract.schema.json', 'diagnoses.json', 'lab-results.json', 'prescriptions.json', 'visits.json']) copyFileSync(new URL(f, mappings), join(dir, f));
      const patients = JSON.parse(readFileSync(new URL('patients.json', mappings), 'utf8')) as { columns: { name: string; maxLength?: number }[] };
      for (const c of patients.columns) if (c.name === 'name') c.maxLength = 200;
      writeFileSync(join(dir, 'patients.json'), JSON.stringify(patients));
      const config = loadConfig({ BASE_URL: TEST_BASE, LOG_LEVEL: 'silent', HL7_SPOOL_DIR: join(dir, 'spool'), EXTRACT_MAPPINGS_DIR: dir });
      const fixed = await buildApp(config, { db: ta.tdb.db, logger: createLogger('silent'), fhir: ta.fhir });
      t.teardown(() => fixed.close());
      const admin = { authorization: `Bearer ${await fixed.auth.mint('admin')}` };
      const batch = await fixed.inject({ method: 'POST', url: '/ingest/dead-letters/$replay', headers: { ...admin, 'content-type': 'application/json' }, payload: { type: 'EXTRACT patients' } });
      t.equal(batch.statusCode, 200, batch.body);
      const results = batch.json<{ results: { id: number; outcome: string; job?: string }[] }>().results.filter((r) => kept.some((k) => k.id === r.id));
      t.same(results.map((r) => r.outcome), ['stored', 'stored'], 'both rows stored after the fix (CSV and NDJSON)');
      t.ok(results.every((r) => r.job), 'each replay is a job of one row');
      const stored = await search<Patient>(`Patient?identifier=${encodeURIComponent(`${mrnSystem(TOWNSHIP)}|RP1`)}`);
      t.equal(stored[0]?.name?.[0].text, long, 'the row as first posted');
      t.equal((await search<Patient>(`Patient?identifier=${encodeURIComponent(`${mrnSystem(TOWNSHIP)}|RP3`)}`)).length, 1);
      const still = await open(fixed, admin);
      t.notOk(still.some((d) => kept.some((k) => k.id === d.id)), 'no longer among the open dead letters');
      const again = await fixed.inject({ method: 'POST', url: `/ingest/dead-letters/${kept[0].id}/$replay`, headers: admin });
      t.equal(again.statusCode, 409, 'a replayed dead letter is not replayed twice');
    });

    await t.test('refusals', async (t) => {
      t.equal((await post('x-rays', 'a\n', 'text/csv')).statusCode, 404);
      t.equal((await post('patients', 'a\n', 'text/plain')).statusCode, 415);
      t.equal((await post('patients', 'a\n', 'text/csv; charset=latin1')).statusCode, 415);
      t.equal((await post('patients', 'mrn\nP9\n', 'text/csv', {} as typeof township)).statusCode, 403, 'the administrator acts for no institution');
      const noHeader = await post('patients', 'mrn,phone\nP9,1\n', 'text/csv');
      t.equal(noHeader.statusCode, 400);
      t.match(noHeader.body, 'name');
      const unclosed = await post('patients', 'mrn,name\nP9,"open\n', 'text/csv');
      t.equal(unclosed.statusCode, 400);
      const jobs = (await app.inject({ url: '/ingest/jobs', headers: township })).json<{ items: Job[] }>();
      t.ok(jobs.items.some((j) => j.status === 'failed' && j.error), 'a failed load is recorded with its reason');
    });
  });
}
