/**
 * Golden comparison with other converters' expected outputs (Microsoft FHIR-Converter `msft`,
 * CDC ReportStream `rs`): clinical facts field by field. Every disagreement is either fixed or
 * listed with its reason in golden-disagreements.json; the test fails on an unlisted one and on a
 * listed one that no longer occurs.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { parseHl7 } from '../../../../src/ingest/hl7v2/index.js';
import { loadMappings, mapMessage } from '../../../../src/ingest/hl7v2/mapping/index.js';
import { clinicalFacts, compareFacts, type Disagreement } from './clinical-facts.js';

const FIXTURES = '/work/shared/fixtures/hl7v2/';
const fixtures = existsSync(FIXTURES) ? FIXTURES : fileURLToPath(new URL('../../../fixtures/hl7v2/', import.meta.url));
const registry = loadMappings(fileURLToPath(new URL('../../../../mappings/hl7v2/', import.meta.url)));
const listed = JSON.parse(readFileSync(new URL('./golden-disagreements.json', import.meta.url), 'utf8')) as {
  minimumAgreement: Record<string, number>;
  disagreements: (Disagreement & { reason: string })[];
};

const keyOf = (d: { fixture: string; field: string }): string => `${d.fixture} ${d.field}`;

t.test('clinical agreement with msft and rs expected outputs', async (t) => {
  const found: Disagreement[] = [];
  const rates = new Map<string, { compared: number; agreed: number }>();
  const files = readdirSync(fixtures).filter((f) => /^(msft|rs)__.*\.expected\.json$/.test(f)).sort();
  for (const exp of files) {
    const fixture = exp.replace('.expected.json', '');
    const source = fixture.split('__')[0];
    const expected = clinicalFacts(JSON.parse(readFileSync(fixtures + exp, 'utf8')));
    let ours = new Map<string, string>();
    try {
      const msg = parseHl7(readFileSync(`${fixtures}${fixture}.hl7`));
      ours = clinicalFacts(mapMessage(msg, { sender: { institution: '12330000MB0000000X' }, mappings: registry }).bundle);
    } catch (e) {
      ours.set('error', (e as Error).message);
    }
    const { compared, disagreements } = compareFacts(fixture, expected, ours);
    const r = rates.get(source) ?? { compared: 0, agreed: 0 };
    r.compared += compared;
    r.agreed += compared - disagreements.length;
    rates.set(source, r);
    found.push(...disagreements);
  }
  const all = { compared: 0, agreed: 0 };
  for (const [source, r] of rates) {
    t.comment(`${source}: ${r.agreed}/${r.compared} clinical fields agree (${((100 * r.agreed) / r.compared).toFixed(1)}%)`);
    // Each source is held at its floor, so that a regression shows in the source it touches. What
    // keeps msft below 95% are its own choices that the v2-to-FHIR IG does not make (the insured
    // spouse's ids on the Patient, DiagnosticReports for order messages, the 'called by' name among
    // the given names …), each listed with its reason.
    const min = listed.minimumAgreement[source] ?? 0.95;
    t.ok(r.agreed / r.compared >= min, `${source} agreement at least ${(100 * min).toFixed(0)}%`);
    all.compared += r.compared;
    all.agreed += r.agreed;
  }
  t.comment(`all sources: ${all.agreed}/${all.compared} clinical fields agree (${((100 * all.agreed) / all.compared).toFixed(1)}%)`);
  const target = listed.minimumAgreement.overall ?? 0.95;
  t.ok(all.agreed / all.compared >= target, `agreement over all compared fields at least ${(100 * target).toFixed(0)}%`);
  const listedKeys = new Set(listed.disagreements.map(keyOf));
  const foundKeys = new Set(found.map(keyOf));
  const unlisted = found.filter((d) => !listedKeys.has(keyOf(d)));
  const gone = listed.disagreements.filter((d) => !foundKeys.has(keyOf(d)));
  t.same(unlisted, [], 'every disagreement is listed with a reason in golden-disagreements.json');
  t.same(gone.map(keyOf), [], 'every listed disagreement still occurs');
  t.ok(listed.disagreements.every((d) => d.reason.length > 10), 'each listed disagreement gives its reason');
});
