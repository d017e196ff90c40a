/**
 * _include and _revinclude, with :iterate, the wildcard, target types, deduplication and the cap.
 */
import t from 'tap';
import type { Bundle } from '@medplum/fhirtypes';
import { loadBaseDefinitions } from '../../../src/fhir/definitions.js';
import { searchBundle, type SearchQuery } from '../../../src/store/search/index.js';
import { BACKENDS, openTestDb } from '../../helpers/db.js';
import { OPTS, seed } from './fixtures.js';

loadBaseDefinitions();

function modes(b: Bundle): { match: string[]; include: string[]; outcome: number } {
  const of = (m: string) =>
    (b.entry ?? [])
      .filter((e) => e.search?.mode === m)
      .map((e) => `${e.resource?.resourceType}/${e.resource?.id}`)
      .sort();
  return { match: of('match'), include: of('include'), outcome: (b.entry ?? []).filter((e) => e.search?.mode === 'outcome').length };
}

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const tdb = await openTestDb(backend);
    t.teardown(() => tdb.close());
    const { db } = tdb;
    await db.tx((q) => seed(q));
    const run = async (type: string, query: SearchQuery, opts = OPTS) => modes((await searchBundle(db, type, query, opts)).bundle);

    t.test('_include: referenced resources once each, not counted in _count', async (t) => {
      const r = await run('Observation', { code: '4548-4', _include: 'Observation:subject' });
      t.same(r.match, ['Observation/o1', 'Observation/o2', 'Observation/o5', 'Observation/o7']);
      t.same(r.include, ['Patient/p1', 'Patient/p2', 'Patient/p3'], 'p3 twice referenced, once included');
      const paged = await searchBundle(db, 'Observation', { code: '4548-4', _count: '2', _include: 'Observation:subject' }, OPTS);
      t.equal(paged.matches.length, 2);
      t.same(paged.included.map((i) => i.id).sort(), ['p1', 'p2'], 'includes of the page only');
      t.same((await run('Observation', { _id: 'o1', _include: 'Observation:subject:Patient' })).include, ['Patient/p1']);
      t.same((await run('Observation', { _id: 'o1', _include: 'Observation:subject:Group' })).include, []);
      t.same((await run('Observation', { _id: 'o1', _include: ['Observation:subject', 'Observation:encounter', 'Observation:patient'] })).include, [
        'Encounter/e1',
        'Patient/p1',
      ]);
    });

    t.test('wildcard and iterate', async (t) => {
      t.same((await run('Observation', { _id: 'o1', _include: '*' })).include, ['Encounter/e1', 'Patient/p1']);
      const chain = await run('Organization', { _id: 'org3', _include: 'Organization:partof', '_include:iterate': 'Organization:partof' });
      t.same(chain.include, ['Organization/org1', 'Organization/org2'], 'up the hierarchy');
      const once = await run('Organization', { _id: 'org3', _include: 'Organization:partof' });
      t.same(once.include, ['Organization/org2'], 'without iterate, one step');
      const down = await run('Organization', { _id: 'org1', '_revinclude:iterate': 'Organization:partof' });
      t.same(down.include, ['Organization/org2', 'Organization/org3'], 'down the hierarchy');
      const mixed = await run('Patient', { _id: 'p1', _revinclude: 'Observation:subject', '_include:iterate': 'Observation:encounter' });
      t.same(mixed.include, ['Encounter/e1', 'Observation/o1', 'Observation/o3']);
    });

    t.test('_revinclude: resources pointing at the matches, never a deleted one', async (t) => {
      const r = await run('Patient', { _id: 'p1,p3', _revinclude: 'Observation:subject' });
      t.same(r.include, ['Observation/o1', 'Observation/o3', 'Observation/o4', 'Observation/o5']);
      const e = await run('Patient', { _id: 'p2', _revinclude: ['Encounter:subject', 'RiskAssessment:subject'] });
      t.same(e.include, ['Encounter/e2', 'RiskAssessment/r2']);
      t.same((await run('Patient', { _id: 'p4', _revinclude: 'Observation:subject' })).include, []);
    });

    t.test('the cap on included resources', async (t) => {
      const r = await run('Patient', { _id: 'p1,p3', _revinclude: 'Observation:subject' }, { ...OPTS, maxIncludes: 2 });
      t.equal(r.include.length, 2);
      t.equal(r.outcome, 1, 'an outcome entry says the includes were truncated');
    });
  });
}
