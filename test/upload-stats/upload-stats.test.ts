/**
 * $upload-stats: the figures equal those computed here from the input files (rows received, fields
 * filled), per resource type and feed; the totals are those of the feeds; the month-by-month form
 * (start, end) gives each month the figures its own period gives; institutions see only their own
 * figures.
 */
import t from 'tap';
import type { Parameters, ParametersParameter } from '@medplum/fhirtypes';
import { createTestApp } from '../helpers/app.js';
import { BACKENDS } from '../helpers/db.js';

const TOWNSHIP = '1233042447102341XF';
const PATIENTS = `mrn,name,id_card,gender,birth_date,phone,address
S001,甲,,F,1950-01-02,,
S002,乙,,M,,,
S003,丙,,,1961-05-06,,
S004,丁,,,,,
S005,戊,,F,1970-07-08,,
`;
/** Item codes that no terminology map knows: no LOINC coding is added. */
const LABS = `report_no,item_code,item_name,mrn,patient_name,value,unit,ref_low,ref_high,flag,result_time
Q1,ZZ-UNMAPPED-1,甲项,S001,,1.0,g/L,0.5,2.0,N,2026-11-20 08:00
Q2,ZZ-UNMAPPED-1,甲项,S002,,1.1,g/L,,,N,2026-11-20 08:00
Q3,ZZ-UNMAPPED-2,乙项,S003,,阳性,,,,A,2026-11-20 08:00
`;

function parseCsv(text: string): Record<string, string>[] {
  const [header, ...lines] = text.trim().split('\n');
  const cols = header.split(',');
  return lines.map((l) => Object.fromEntries(l.split(',').map((v, i) => [cols[i], v])));
}

function feedOf(p: Pick<Parameters, 'parameter'>, type: string, feed: string): Record<string, unknown> | undefined {
  const f = p.parameter?.find((x) => x.name === 'feed' && x.part?.some((y) => y.name === 'resourceType' && y.valueCode === type) && x.part.some((y) => y.name === 'feed' && y.valueString === feed));
  if (!f) return undefined;
  const out: Record<string, unknown> = { fields: {} as Record<string, number> };
  for (const part of f.part as ParametersParameter[]) {
    if (part.name === 'field') (out.fields as Record<string, number>)[part.part?.[0].valueString as string] = part.part?.[1].valueInteger as number;
    else out[part.name] = part.valueInteger ?? part.valueDecimal ?? part.valueString ?? part.valueCode;
  }
  return out;
}

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const ta = await createTestApp(backend);
    t.teardown(() => ta.close());
    const { app } = ta;
    const as = async (c: string) => ({ authorization: `Bearer ${await ta.token(c)}` });
    const township = await as('township1-his');
    for (const [kind, body] of [
      ['patients', PATIENTS],
      ['lab-results', LABS],
    ]) {
      const r = await app.inject({ method: 'POST', url: `/ingest/extract/${kind}`, headers: { ...township, 'content-type': 'text/csv' }, payload: body });
      t.equal(r.statusCode, 200, r.body.slice(0, 200));
    }
    const period = new Date(Date.now() + 8 * 3600_000).toISOString().slice(0, 7);
    const res = await app.inject({ url: `/fhir/$upload-stats?institution=${TOWNSHIP}&period=${period}`, headers: township });
    t.equal(res.statusCode, 200, res.body.slice(0, 300));
    const stats = res.json<Parameters>();

    // Expected, from the files: Patient fields identifier, name, gender, birthDate.
    const pats = parseCsv(PATIENTS);
    const pFields = { identifier: pats.length, name: pats.filter((p) => p.name).length, gender: pats.filter((p) => p.gender).length, birthDate: pats.filter((p) => p.birth_date).length };
    const pPresent = Object.values(pFields).reduce((a, b) => a + b, 0);
    const patient = feedOf(stats, 'Patient', 'township1-his');
    t.equal(patient?.received, pats.length);
    t.same(patient?.fields, pFields);
    t.equal(patient?.complete, pats.filter((p) => p.gender && p.birth_date).length);
    t.equal(patient?.completeness, Math.round((10000 * pPresent) / (4 * pats.length)) / 100);

    // Observation fields identifier, LOINC code (none: unmapped codes), subject, effective, value, referenceRange.
    const labs = parseCsv(LABS);
    const oFields = {
      identifier: labs.length,
      "code.coding.where(system = 'http://loinc.org')": 0,
      subject: labs.length,
      effective: labs.filter((l) => l.result_time).length,
      value: labs.filter((l) => l.value).length,
      referenceRange: labs.filter((l) => l.ref_low || l.ref_high).length,
    };
    const obs = feedOf(stats, 'Observation', 'township1-his');
    t.equal(obs?.received, labs.length);
    t.same(obs?.fields, oFields);
    t.equal(obs?.complete, 0);
    t.equal(obs?.completeness, Math.round((10000 * Object.values(oFields).reduce((a, b) => a + b, 0)) / (6 * labs.length)) / 100);

    // Totals: the sums of the feeds; completeness = fields present / fields expected over every feed.
    const feeds = (stats.parameter ?? []).filter((p) => p.name === 'feed').map((p) => p.part as ParametersParameter[]);
    const partOf = (parts: ParametersParameter[] | undefined, name: string) => parts?.find((x) => x.name === name);
    const intOf = (parts: ParametersParameter[] | undefined, name: string) => partOf(parts, name)?.valueInteger ?? NaN;
    const fieldCounts = feeds.map((f) => f.filter((x) => x.name === 'field').map((x) => x.part?.[1].valueInteger ?? 0));
    const present = fieldCounts.flat().reduce((a, b) => a + b, 0);
    const expected = feeds.reduce((a, f, i) => a + intOf(f, 'received') * fieldCounts[i].length, 0);
    t.ok(feeds.length >= 2, 'several feeds');
    t.equal(intOf(stats.parameter, 'received'), feeds.reduce((a, f) => a + intOf(f, 'received'), 0), 'received in total');
    t.equal(intOf(stats.parameter, 'complete'), feeds.reduce((a, f) => a + intOf(f, 'complete'), 0), 'complete in total');
    t.equal(partOf(stats.parameter, 'completeness')?.valueDecimal, Math.round((10000 * present) / expected) / 100, 'completeness over every feed');

    // Month by month: the month before (nothing) and this month (the same as its own period).
    const [y, m] = period.split('-').map(Number);
    const before = `${m === 1 ? y - 1 : y}-${String(m === 1 ? 12 : m - 1).padStart(2, '0')}`;
    const monthly = await app.inject({ url: `/fhir/$upload-stats?institution=${TOWNSHIP}&start=${before}&end=${period}`, headers: township });
    t.equal(monthly.statusCode, 200, monthly.body.slice(0, 300));
    const months = (monthly.json<Parameters>().parameter ?? []).filter((p) => p.name === 'month').map((p) => p.part as ParametersParameter[]);
    t.same(months.map((x) => partOf(x, 'period')?.valueString), [before, period], 'one month each, oldest first');
    t.same(months[0].filter((x) => x.name !== 'period'), [{ name: 'received', valueInteger: 0 }, { name: 'complete', valueInteger: 0 }, { name: 'completeness', valueDecimal: 0 }], 'nothing the month before');
    t.same(months[1].filter((x) => x.name !== 'period'), (stats.parameter ?? []).filter((x) => x.name !== 'institution' && x.name !== 'period'), 'this month as its own period gives it');
    const monthlyPost = await app.inject({
      method: 'POST',
      url: '/fhir/$upload-stats',
      headers: { ...township, 'content-type': 'application/fhir+json' },
      payload: { resourceType: 'Parameters', parameter: [{ name: 'start', valueString: period }, { name: 'end', valueString: period }] },
    });
    t.same(monthlyPost.json<Parameters>().parameter?.[1], monthly.json<Parameters>().parameter?.[2], 'POST with Parameters, for the client\'s own institution');
    for (const [query, expression] of [
      [`start=${period}`, 'end'],
      [`end=${period}`, 'start'],
      [`period=${period}&start=${period}&end=${period}`, 'period'],
      [`start=${period}&end=${before}`, 'end'],
      ['start=2024-01&end=2026-01', 'end'],
      ['start=2026-13&end=2027-01', 'start'],
      ['start=2026&end=2026-02', 'start'],
    ]) {
      const bad = await app.inject({ url: `/fhir/$upload-stats?${query}`, headers: township });
      t.equal(bad.statusCode, 400, query);
      t.match(bad.json(), { issue: [{ expression: [expression] }] }, `${query}: names ${expression}`);
    }
    t.equal((await app.inject({ url: `/fhir/$upload-stats?institution=${TOWNSHIP}&start=${before}&end=${period}`, headers: await as('township2-his') })).statusCode, 403, 'month by month, another township may not see them either');

    const other = await app.inject({ url: `/fhir/$upload-stats?institution=${TOWNSHIP}&period=${period}`, headers: await as('township2-his') });
    t.equal(other.statusCode, 403, 'another township may not see these figures');
    const platform = await app.inject({ url: `/fhir/$upload-stats?institution=${TOWNSHIP}&period=${period}`, headers: await as('regional-platform') });
    t.equal(platform.statusCode, 200, 'the regional platform sees every institution');
    t.same(feedOf(platform.json<Parameters>(), 'Patient', 'township1-his'), patient);
    const lastYear = await app.inject({ url: `/fhir/$upload-stats?institution=${TOWNSHIP}&period=2001`, headers: township });
    t.same(lastYear.json<Parameters>().parameter?.filter((p) => p.name === 'feed'), [], 'nothing uploaded in 2001');
    t.equal((await app.inject({ url: `/fhir/$upload-stats?period=2026-13`, headers: township })).statusCode, 400);
    t.equal((await app.inject({ url: '/fhir/$upload-stats', headers: township })).statusCode, 400);
  });
}
