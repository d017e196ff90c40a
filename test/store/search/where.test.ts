/**
 * Filters of every parameter type, their modifiers and prefixes, chains and _has, against the
 * seed data, on every backend.
 */
import t from 'tap';
import { loadBaseDefinitions } from '../../../src/fhir/definitions.js';
import { BACKENDS, openTestDb } from '../../helpers/db.js';
import { BASE, ID_CARD, matchIds, searchError, seed } from './fixtures.js';

loadBaseDefinitions();

const sorted = (a: string[]) => [...a].sort();

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const tdb = await openTestDb(backend);
    t.teardown(() => tdb.close());
    const { db } = tdb;
    await db.tx((q) => seed(q));
    const ids = async (type: string | undefined, query: Record<string, string | string[]>) => sorted(await matchIds(db, type, query));

    t.test('string: case- and accent-insensitive prefix, :exact, :contains, OR and AND', async (t) => {
      t.same(await ids('Patient', { name: '张' }), ['p1']);
      t.same(await ids('Patient', { name: '张三' }), ['p1'], 'Chinese family+given written together');
      t.same(await ids('Patient', { name: 'ZHANG' }), ['p1'], 'pinyin, any case');
      t.same(await ids('Patient', { name: 'jose' }), ['p3'], 'accents ignored');
      t.same(await ids('Patient', { family: 'mul' }), ['p3']);
      t.same(await ids('Patient', { 'name:exact': 'Müller' }), ['p3']);
      t.same(await ids('Patient', { 'name:exact': 'müller' }), [], ':exact is case-sensitive');
      t.same(await ids('Patient', { 'name:contains': 'ULL' }), ['p3']);
      t.same(await ids('Patient', { name: 'li,wang' }), ['p2', 'p4'], 'comma is OR');
      t.same(await ids('Patient', { name: ['zhang', 'san'] }), ['p1'], 'repeated is AND');
      t.same(await ids('Patient', { name: ['zhang', 'si'] }), []);
      t.same(await ids('Patient', { name: '%' }), [], 'LIKE wildcards are literals');
      t.same(await ids('Patient', { name: '_' }), []);
    });

    t.test('token: code, system|code, |code, system|, :not, :text', async (t) => {
      const hba1c = ['o1', 'o2', 'o5', 'o7'];
      t.same(await ids('Observation', { code: '4548-4' }), hba1c, 'deleted o6 is never found');
      t.same(await ids('Observation', { code: 'http://loinc.org|4548-4' }), hba1c);
      t.same(await ids('Observation', { code: 'http://snomed.info/sct|4548-4' }), []);
      t.same(await ids('Observation', { code: '|GLU' }), [], 'GLU has a system');
      t.same(await ids('Observation', { code: 'urn:county:lab|' }), ['o4']);
      t.same(await ids('Observation', { code: 'http://loinc.org|' }), ['o1', 'o2', 'o3', 'o5', 'o7']);
      t.same(await ids('Observation', { 'code:not': '4548-4' }), ['o3', 'o4']);
      t.same(await ids('Observation', { 'code:text': 'HEMO' }), hba1c);
      t.same(await ids('Observation', { 'code:text': '血糖' }), ['o4']);
      t.same(await ids('Patient', { identifier: `${ID_CARD}|110101199003071234` }), ['p1']);
      t.same(await ids('Patient', { gender: 'male,female' }), ['p1', 'p2', 'p4']);
      t.same(await ids('Patient', { active: 'true' }), ['p1', 'p2', 'p3', 'p4']);
      t.same(await ids('Observation', { category: 'vital-signs', status: 'final' }), ['o3']);
    });

    t.test('date: precision ranges and every prefix', async (t) => {
      t.same(await ids('Observation', { date: '2024-03' }), ['o1', 'o2']);
      t.same(await ids('Observation', { date: '2024-03-01' }), ['o1'], '08:30+08:00 is 00:30Z');
      t.same(await ids('Observation', { date: '2024-02-29' }), [], 'zone honoured');
      t.same(await ids('Observation', { date: 'gt2024-03-31' }), ['o3', 'o5']);
      t.same(await ids('Observation', { date: 'lt2024-01-01' }), ['o4']);
      t.same(await ids('Observation', { date: 'ge2024-04-01' }), ['o3', 'o5']);
      t.same(await ids('Observation', { date: 'le2023-12-31' }), ['o4']);
      t.same(await ids('Observation', { date: 'sa2024-03-31' }), ['o3', 'o5']);
      t.same(await ids('Observation', { date: 'eb2024-01-01' }), ['o4']);
      t.same(await ids('Observation', { date: 'ne2024-03' }), ['o3', 'o4', 'o5']);
      t.same(await ids('Observation', { date: ['ge2024-03-01', 'lt2024-04-01'] }), ['o1', 'o2'], 'a range by AND');
      const ap = await ids('Observation', { date: 'ap2024-06-15' });
      t.ok(ap.includes('o5') && !ap.includes('o4'), 'ap: within 10% of the distance to now');
      t.same(await ids('Patient', { birthdate: '1990' }), ['p1', 'p3']);
      t.same(await ids('Patient', { birthdate: '1990-03' }), ['p1'], 'a year-precision date is not within March');
      t.same(await ids('Encounter', { date: '2024-03' }), ['e1'], 'a period within the month');
      t.same(await ids('Encounter', { date: 'ge2024-03-02' }), ['e1', 'e2'], 'an open period extends to infinity');
      t.same(await ids('Organization', { _lastUpdated: 'le2024-07-01T00:01:00Z' }), ['org1', 'org2']);
      t.same(await ids('Organization', { _lastUpdated: 'gt2024-07-01T00:01:00Z' }), ['org3']);
    });

    t.test('number: implicit precision, prefixes, ap', async (t) => {
      t.same(await ids('RiskAssessment', { probability: '0.25' }), ['r1']);
      t.same(await ids('RiskAssessment', { probability: '0.3' }), [], '0.25 is not within [0.25, 0.35]');
      t.same(await ids('RiskAssessment', { probability: 'gt0.5' }), ['r2']);
      t.same(await ids('RiskAssessment', { probability: 'lt0.5' }), ['r1']);
      t.same(await ids('RiskAssessment', { probability: 'ge0.8' }), ['r2']);
      t.same(await ids('RiskAssessment', { probability: 'le0.25' }), ['r1']);
      t.same(await ids('RiskAssessment', { probability: 'ne0.25' }), ['r2']);
      t.same(await ids('RiskAssessment', { probability: 'ap0.8' }), ['r2']);
      t.same(await ids('RiskAssessment', { probability: 'sa0.5' }), ['r2']);
      t.same(await ids('RiskAssessment', { probability: 'eb0.5' }), ['r1']);
    });

    t.test('quantity: value|system|code, value||unit, prefixes', async (t) => {
      t.same(await ids('Observation', { 'value-quantity': '6.8' }), ['o1']);
      t.same(await ids('Observation', { 'value-quantity': 'gt7' }), ['o2', 'o3'], 'gt compares with exactly 7');
      t.same(await ids('Observation', { 'value-quantity': 'lt7|http://unitsofmeasure.org|%' }), ['o1', 'o7']);
      t.same(await ids('Observation', { 'value-quantity': '5.4|http://unitsofmeasure.org|mmol/L' }), ['o4']);
      t.same(await ids('Observation', { 'value-quantity': '5.4||mmol/L' }), ['o4']);
      t.same(await ids('Observation', { 'value-quantity': '120||mm[Hg]' }), ['o3']);
      t.same(await ids('Observation', { 'value-quantity': '120|http://unitsofmeasure.org|%' }), []);
      t.same(await ids('Observation', { 'value-quantity': 'ap6.4' }), ['o1', 'o7'], 'within 10%');
    });

    t.test('reference: id, Type/id, absolute URL, :Type, :identifier, :missing', async (t) => {
      for (const v of ['Patient/p1', 'p1', `${BASE}/Patient/p1`]) t.same(await ids('Observation', { subject: v }), ['o1', 'o3'], v);
      t.same(await ids('Observation', { 'subject:Patient': 'p1' }), ['o1', 'o3']);
      t.same(await ids('Observation', { patient: 'p1,p2' }), ['o1', 'o2', 'o3']);
      t.same(await ids('Observation', { subject: 'https://other.example/fhir/Patient/p1' }), []);
      t.same(await ids('Observation', { 'subject:identifier': `${ID_CARD}|110101199003071234` }), ['o7']);
      t.same(await ids('Observation', { 'subject:missing': 'true' }), ['o7'], 'a logical reference has no resource reference');
      t.same(await ids('Observation', { 'performer:missing': 'false' }), ['o4']);
      t.same(await ids('Organization', { partof: 'Organization/org1' }), ['org2']);
      t.same(await ids('Observation', { code: '4548-4', subject: 'p1' }), ['o1']);
    });

    t.test('uri: exact, :below, :above', async (t) => {
      const lab = 'http://county.example.cn/fhir/ValueSet/lab';
      t.same(await ids('ValueSet', { url: lab }), ['vs1']);
      t.same(await ids('ValueSet', { 'url:below': lab }), ['vs1', 'vs2']);
      t.same(await ids('ValueSet', { 'url:above': `${lab}/chem/x` }), ['vs1', 'vs2']);
      t.same(await ids('ValueSet', { 'url:above': lab }), ['vs1']);
    });

    t.test(':missing, _id, _tag, _profile, _security, _source', async (t) => {
      t.same(await ids('Patient', { 'birthdate:missing': 'true' }), ['p4']);
      t.same(await ids('Patient', { 'birthdate:missing': 'false' }), ['p1', 'p2', 'p3']);
      t.same(await ids('Patient', { _id: 'p1,p2' }), ['p1', 'p2']);
      t.same(await ids('Observation', { _id: 'o6' }), [], 'deleted');
      t.same(await ids('Patient', { _tag: 'vip' }), ['p1']);
      t.same(await ids('Patient', { _tag: 'urn:county:tag|vip' }), ['p1']);
      t.same(await ids('Patient', { _profile: 'http://county.example.cn/StructureDefinition/cn-patient' }), ['p1']);
      t.same(await ids('Patient', { _source: 'urn:his:hosp-a' }), ['p1']);
      t.same(await ids('Patient', { _security: 'R' }), []);
      t.same(await ids('Patient', { '_tag:missing': 'true' }), ['p2', 'p3', 'p4']);
    });

    t.test('system-level search', async (t) => {
      t.same(await ids(undefined, { _tag: 'vip' }), ['p1']);
      t.same(await ids(undefined, { _id: 'p1,org1,o6' }), ['org1', 'p1']);
      t.same(await ids(undefined, { _type: 'Organization,ValueSet', _lastUpdated: 'lt2024-07-01T00:02:00Z' }), ['org1', 'org2']);
      t.same(await ids(undefined, { _type: 'ValueSet' }), ['vs1', 'vs2']);
      const e = await searchError(db, undefined, { name: 'zhang' });
      t.equal(e.code, 'GW_ERR_UNSUPPORTED_SEARCH');
      t.same(e.outcome.issue[0].expression, ['name']);
    });

    t.test('chains: one level, with or without the target type', async (t) => {
      t.same(await ids('Observation', { 'subject:Patient.identifier': `${ID_CARD}|110101199003071234` }), ['o1', 'o3']);
      t.same(await ids('Observation', { 'patient.name': 'zhang' }), ['o1', 'o3']);
      t.same(await ids('Encounter', { 'subject:Patient.birthdate': '1985-11-20' }), ['e2']);
      t.same(await ids('Patient', { 'organization.name': '城关' }), ['p1']);
      t.same(await ids('Organization', { 'partof.name': '县人民' }), ['org2']);
      const ambiguous = await searchError(db, 'Observation', { 'subject.name': 'zhang' });
      t.equal(ambiguous.statusCode, 400);
      t.match(ambiguous.message, /ambiguous/);
      const twoLevels = await searchError(db, 'Observation', { 'patient.organization.name': 'x' });
      t.equal(twoLevels.code, 'GW_ERR_UNSUPPORTED_SEARCH');
      t.equal((await searchError(db, 'Observation', { 'code.name': 'x' })).code, 'GW_ERR_INVALID_SEARCH', 'only references chain');
    });

    t.test('_has: reverse chains, nested one level', async (t) => {
      t.same(await ids('Patient', { '_has:Observation:patient:code': '4548-4' }), ['p1', 'p2', 'p3']);
      t.same(await ids('Patient', { '_has:Observation:patient:code': '8480-6' }), ['p1']);
      t.same(await ids('Patient', { '_has:Encounter:subject:status': 'finished' }), ['p1']);
      t.same(await ids('Patient', { '_has:Observation:subject:value-quantity': 'gt100' }), ['p1']);
      t.same(await ids('Organization', { '_has:Patient:organization:_has:Observation:patient:code': 'GLU' }), ['org1']);
      t.equal((await searchError(db, 'Patient', { '_has:Observation:code:code': 'x' })).code, 'GW_ERR_INVALID_SEARCH');
      t.equal((await searchError(db, 'Patient', { '_has:Observation:patient': 'x' })).code, 'GW_ERR_INVALID_SEARCH');
      t.equal((await searchError(db, 'Patient', { '_has:Nope:patient:code': 'x' })).code, 'GW_ERR_UNSUPPORTED_SEARCH');
    });

    t.test('SQL injection in every parameter type matches nothing or is refused as a bad value', async (t) => {
      const evil = ["x' OR '1'='1", "1; DROP TABLE resource; --", "') OR 1=1 --", '\\', '%\'%'];
      for (const v of evil) {
        t.same(await ids('Patient', { name: v }), [], `string ${v}`);
        t.same(await ids('Patient', { 'name:exact': v }), []);
        t.same(await ids('Patient', { 'name:contains': v }), []);
        t.same(await ids('Observation', { code: v }), [], `token ${v}`);
        t.same(await ids('Observation', { code: `${v}|${v}` }), []);
        t.same(await ids('Observation', { 'code:text': v }), []);
        t.same(await ids('Observation', { subject: v }), [], `reference ${v}`);
        t.same(await ids('Observation', { 'subject:identifier': v }), []);
        t.same(await ids('ValueSet', { url: v }), [], `uri ${v}`);
        t.same(await ids('ValueSet', { 'url:above': v }), []);
        t.same(await ids('Patient', { _id: v }), []);
        t.same(await ids(undefined, { _tag: v }), []);
        t.same(await ids('Observation', { 'subject:Patient.name': v }), []);
        t.same(await ids('Patient', { '_has:Observation:patient:code': v }), []);
        for (const [type, p] of [
          ['Observation', 'date'],
          ['RiskAssessment', 'probability'],
          ['Observation', 'value-quantity'],
        ]) {
          t.equal((await searchError(db, type, { [p]: v })).code, 'GW_ERR_INVALID_SEARCH', `${p} ${v} is a bad value`);
        }
      }
      t.same(await ids('Observation', { 'value-quantity': `5.4|${evil[0]}|${evil[1]}` }), []);
      const still = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM resource');
      t.ok(still.rows[0].n > 10, 'the resource table is intact');
    });
  });
}
