/**
 * Terminology engine: loading and checking ConceptMap files, translate, standardize, counters.
 */
import t from 'tap';
import { mkdtemp, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import {
  loadConceptMaps,
  loadTerminology,
  localCodeSystem,
  parseLocalCodeSystem,
  registerTerminologyMetrics,
  standardCodings,
  Terminology,
  TerminologyLoadError,
  LOINC_SYSTEM,
  ICD10_SYSTEM,
  ICD10_CN_CLINICAL_SYSTEM,
  MAX_UNMAPPED_KEYS,
  OTHER_CODE,
  UNMAPPED_METRIC,
} from '../../src/terminology/index.js';

const DIR = './mappings/terminology';
const COUNTY = '1233042447101234XX';
const TOWNSHIP1 = '1233042447102341XF';
const COUNTY_LAB = localCodeSystem(COUNTY, 'lab');

async function tempDir(files: Record<string, unknown>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'terminology-'));
  for (const [name, content] of Object.entries(files)) {
    await writeFile(join(dir, name), typeof content === 'string' ? content : JSON.stringify(content));
  }
  return dir;
}

const minimal = (over: Record<string, unknown> = {}) => ({
  resourceType: 'ConceptMap',
  url: 'https://example.org/ConceptMap/x',
  status: 'active',
  group: [{ source: 'urn:local', target: LOINC_SYSTEM, element: [{ code: 'A', target: [{ code: '718-7', equivalence: 'equivalent' }] }] }],
  ...over,
});

t.test('the shipped maps load and pass every check', async (t) => {
  const maps = await loadConceptMaps(DIR);
  t.same(maps.map((m) => m.map.id).sort(), [
    'county-exam-loinc',
    'county-his-diagnosis-icd10',
    'county-lis-lab-loinc',
    'township1-exam-loinc',
    'township1-lis-lab-loinc',
  ]);
  for (const { map } of maps) t.equal(map.url, `https://fhir.county-hie.cn/ConceptMap/${map.id}`, `${map.id} url follows its id`);
});

t.test('local code systems are per institution and domain', async (t) => {
  t.equal(COUNTY_LAB, 'https://fhir.county-hie.cn/CodeSystem/local/1233042447101234XX/lab');
  t.same(parseLocalCodeSystem(COUNTY_LAB), { institution: COUNTY, domain: 'lab' });
  t.equal(parseLocalCodeSystem('http://loinc.org'), undefined);
  t.equal(parseLocalCodeSystem('https://fhir.county-hie.cn/CodeSystem/local/X/unknown'), undefined);
});

t.test('a bad file fails loading, naming file and element', async (t) => {
  const noEquivalence = minimal({ group: [{ source: 'urn:local', target: LOINC_SYSTEM, element: [{ code: 'A', target: [{ code: '718-7' }] }] }] });
  const noCode = minimal({ url: 'https://example.org/ConceptMap/y', group: [{ source: 'urn:local', target: LOINC_SYSTEM, element: [{ display: 'no code' }] }] });
  const noSystems = minimal({ url: 'https://example.org/ConceptMap/z', group: [{ element: [{ code: 'A' }] }] });
  const dir = await tempDir({ 'a.json': noEquivalence, 'b.json': noCode, 'c.json': noSystems, 'd.json': '{ not json' });
  const err = await loadConceptMaps(dir).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.type(err, TerminologyLoadError);
  const problems = (err as TerminologyLoadError).problems;
  t.ok(problems.some((p) => p.includes('a.json') && p.includes('ConceptMap.group[0].element[0].target[0].equivalence is required')), 'missing equivalence');
  t.ok(problems.some((p) => p.includes('b.json') && p.includes('ConceptMap.group[0].element[0].code is required')), 'missing code');
  t.ok(problems.some((p) => p.includes('c.json') && p.includes('ConceptMap.group[0].source is required')), 'missing source system');
  t.ok(problems.some((p) => p.includes('c.json') && p.includes('ConceptMap.group[0].target is required')), 'missing target system');
  t.ok(problems.some((p) => p.includes('d.json') && p.includes('not valid JSON')), 'broken JSON');
});

t.test('other load errors: bad equivalence, duplicate url, duplicate code, missing directory', async (t) => {
  const badEq = minimal({ group: [{ source: 'urn:local', target: LOINC_SYSTEM, element: [{ code: 'A', target: [{ code: '1', equivalence: 'same' }] }] }] });
  const dir = await tempDir({ 'a.json': badEq });
  await t.rejects(loadConceptMaps(dir), /a\.json: ConceptMap\.group\[0\]\.element\[0\]\.target\[0\]\.equivalence must be one of/);
  const dup = await tempDir({ 'a.json': minimal(), 'b.json': minimal() });
  await t.rejects(loadConceptMaps(dup), /b\.json: ConceptMap\.url https:\/\/example\.org\/ConceptMap\/x is already used by .*a\.json/);
  const twice = minimal({
    group: [{ source: 'urn:local', target: LOINC_SYSTEM, element: [{ code: 'A', target: [] }, { code: 'A', target: [] }] }],
  });
  await t.rejects(loadConceptMaps(await tempDir({ 'a.json': twice })), /ConceptMap\.group\[0\]\.element\[1\]\.code "A" appears twice/);
  await t.rejects(loadConceptMaps(join(tmpdir(), 'no-such-terminology-dir')), /cannot read the terminology directory/);
  const ignored = await tempDir({ 'a.json': minimal(), 'README.md': '# not a map' });
  t.equal((await loadConceptMaps(ignored)).length, 1, 'only .json files are read');
});

t.test('translate by system and code, with a target system filter', async (t) => {
  const term = await loadTerminology(DIR);
  const hba1c = term.translate({ system: COUNTY_LAB, code: 'HBA1C' });
  t.same(hba1c.matches, [
    {
      equivalence: 'equivalent',
      concept: { system: LOINC_SYSTEM, code: '4548-4', display: 'Hemoglobin A1c/Hemoglobin.total in Blood' },
      source: 'https://fhir.county-hie.cn/ConceptMap/county-lis-lab-loinc',
    },
  ]);
  const dx = { system: localCodeSystem(COUNTY, 'diagnosis'), code: 'HIS-DX-0001' };
  t.same(
    term.translate(dx).matches.map((m) => [m.concept.system, m.concept.code]),
    [
      [ICD10_CN_CLINICAL_SYSTEM, 'I10.x00'],
      [ICD10_SYSTEM, 'I10'],
    ],
  );
  t.same(
    term.translate(dx, { targetSystem: ICD10_SYSTEM }).matches.map((m) => m.concept.code),
    ['I10'],
  );
  t.equal(term.translate(dx, { targetSystem: ICD10_CN_CLINICAL_SYSTEM }).matches[0].concept.version, '2.0', 'the edition travels as version');
  t.same(term.translate(dx, { targetSystem: LOINC_SYSTEM }).matches, []);
  t.same(term.translate({ system: COUNTY_LAB, code: 'NOPE' }).matches, [], 'unknown code');
  t.same(term.translate({ code: 'HBA1C' }).matches, [], 'no system, no match');
  t.same(term.translate({ system: localCodeSystem(TOWNSHIP1, 'lab'), code: 'HBA1C' }).matches, [], 'codes are per institution');
  t.equal(term.translate({ system: localCodeSystem(TOWNSHIP1, 'lab'), code: '0403' }).matches[0].concept.code, '4548-4');
  const fpg = term.translate({ system: COUNTY_LAB, code: 'FPG' }).matches;
  t.same(
    fpg.map((m) => [m.concept.code, m.equivalence]),
    [
      ['14771-0', 'equivalent'],
      ['1558-6', 'relatedto'],
    ],
  );
  t.same(term.translate({ system: COUNTY_LAB, code: 'HBA1C' }, { conceptMapUrl: 'https://fhir.county-hie.cn/ConceptMap/township1-lis-lab-loinc' }).matches, []);
});

t.test('the demo community items are covered', async (t) => {
  const term = await loadTerminology(DIR);
  const loinc = (system: string, code: string) => term.translate({ system, code }, { targetSystem: LOINC_SYSTEM }).matches[0]?.concept.code;
  const expected: Record<string, string> = {
    WBC: '6690-2', HGB: '718-7', PLT: '777-3', RBC: '789-8', ALT: '1742-6', AST: '1920-8', CREA: '14682-9', HBA1C: '4548-4',
    TC: '14647-2', TG: '14927-8', 'HDL-C': '14646-4', K: '2823-3', NA: '2951-2', CL: '2075-0', TSH: '3016-3',
  };
  for (const [code, want] of Object.entries(expected)) t.equal(loinc(COUNTY_LAB, code), want, code);
  const exam = localCodeSystem(COUNTY, 'exam');
  t.equal(loinc(exam, 'RIS-X001'), '36643-5', 'chest X-ray');
  t.equal(loinc(exam, 'ECG-001'), '34534-8', '12-lead ECG');
  t.equal(loinc(exam, 'RIS-C001'), '30799-1', 'head CT');
  t.equal(term.translate({ system: exam, code: 'RIS-U001' }).matches[0].equivalence, 'wider', 'abdominal ultrasound maps to the wider LOINC study');
});

t.test('standardize keeps the local coding and adds the standard one', async (t) => {
  const term = await loadTerminology(DIR);
  const input = { coding: [{ system: COUNTY_LAB, code: 'HBA1C', display: '糖化血红蛋白' }], text: '糖化血红蛋白' };
  const out = term.standardize(input);
  t.same(out, {
    coding: [
      { system: COUNTY_LAB, code: 'HBA1C', display: '糖化血红蛋白' },
      { system: LOINC_SYSTEM, code: '4548-4', display: 'Hemoglobin A1c/Hemoglobin.total in Blood' },
    ],
    text: '糖化血红蛋白',
  });
  t.equal(input.coding.length, 1, 'the input is not modified');
  t.same(term.standardize(out).coding?.length, 2, 'standardizing twice adds nothing');
  t.same(
    term.standardize({ coding: [{ system: COUNTY_LAB, code: 'FPG' }] }).coding?.map((c) => c.code),
    ['FPG', '14771-0'],
    'only equivalent or wider targets are added',
  );
  t.same(
    term.standardize({ coding: [{ system: localCodeSystem(COUNTY, 'diagnosis'), code: 'HIS-DX-0002' }] }).coding?.map((c) => c.code),
    ['HIS-DX-0002', 'E11.900', 'E11.9'],
    'a diagnosis gets both ICD-10 editions',
  );
  t.same(
    term.standardize({ coding: [{ code: 'ALT' }] }, { institution: COUNTY }).coding,
    [
      { code: 'ALT', system: COUNTY_LAB },
      { system: LOINC_SYSTEM, code: '1742-6', display: 'Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma' },
    ],
    'a bare code of a known institution gets its local system',
  );
  t.same(term.standardize({ text: 'no codings' }), { text: 'no codings' });
  t.same(term.standardize({ coding: [{ system: LOINC_SYSTEM, code: '718-7' }] }).coding?.length, 1, 'a standard coding is left alone');
  t.equal(term.unmappedCount(LOINC_SYSTEM, '718-7'), 0, 'and is not counted as unmapped');
});

t.test('standardCodings counts a local code without a mapping only when asked to', async (t) => {
  const term = await loadTerminology(DIR);
  const lookup = standardCodings(term);
  const feed = standardCodings(term, { countUnmapped: true });
  t.same(lookup({ system: COUNTY_LAB, code: 'NOPE' }), []);
  t.equal(term.unmappedCount(COUNTY_LAB, 'NOPE'), 0, 'a lookup (mutual recognition) counts nothing');
  t.same(feed({ system: COUNTY_LAB, code: 'NOPE' }), []);
  t.equal(term.unmappedCount(COUNTY_LAB, 'NOPE'), 1, 'a feed counts it');
  feed({ system: 'http://loinc.org', code: '0000-0' });
  t.equal(term.unmappedCount('http://loinc.org', '0000-0'), 0, 'a standard code is not a local code to map');
  t.ok(feed({ system: COUNTY_LAB, code: 'HBA1C' }).length > 0);
  t.equal(term.unmappedCount(COUNTY_LAB, 'HBA1C'), 0, 'a mapped code is not counted');
});

t.test('unmapped codes are counted, capped, and exported as a metric', async (t) => {
  const term = await loadTerminology(DIR);
  const registry = new Registry();
  term.standardize({ coding: [{ system: COUNTY_LAB, code: 'XYZ' }] });
  registerTerminologyMetrics(registry, term);
  term.standardize({ coding: [{ system: COUNTY_LAB, code: 'XYZ' }] });
  t.equal(term.unmappedCount(COUNTY_LAB, 'XYZ'), 2);
  t.equal(term.unmappedCount(COUNTY_LAB, 'HBA1C'), 0);
  const text = await registry.metrics();
  t.match(text, new RegExp(`${UNMAPPED_METRIC}\\{system="${COUNTY_LAB.replace(/[.]/g, '\\.')}",code="XYZ"\\} 2`));
  const capped = new Terminology([]);
  for (let i = 0; i < MAX_UNMAPPED_KEYS + 5; i++) capped.standardize({ coding: [{ system: 'urn:x', code: `C${i}` }] });
  t.equal(capped.unmappedCodes().length, MAX_UNMAPPED_KEYS + 1, 'distinct codes are capped, the rest counted together');
  t.equal(capped.unmappedCount('urn:x', OTHER_CODE), 5);
});

t.test('the shipped files are plain R4 ConceptMaps (no engine-only fields)', async (t) => {
  const raw = JSON.parse(await readFile(join(DIR, 'county-lis-lab-loinc.json'), 'utf8')) as Record<string, unknown>;
  t.equal(raw.resourceType, 'ConceptMap');
  t.equal(raw.status, 'active');
});
