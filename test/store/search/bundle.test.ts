/**
 * The searchset Bundle: entries, totals, _summary, _elements and the outcome entry of lenient
 * handling; findMatches for conditional interactions.
 */
import t from 'tap';
import type { Observation, Patient } from '@medplum/fhirtypes';
import { loadBaseDefinitions } from '../../../src/fhir/definitions.js';
import { findMatches, searchBundle, SUBSETTED } from '../../../src/store/search/index.js';
import { BACKENDS, openTestDb } from '../../helpers/db.js';
import { BASE, ID_CARD, OPTS, seed } from './fixtures.js';

loadBaseDefinitions();

const subsetted = (r: { meta?: { tag?: { code?: string }[] } } | undefined) => !!r?.meta?.tag?.some((x) => x.code === SUBSETTED.code);

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const tdb = await openTestDb(backend);
    t.teardown(() => tdb.close());
    const { db } = tdb;
    await db.tx((q) => seed(q));

    t.test('entries, fullUrl, links and totals', async (t) => {
      const { bundle, matches } = await searchBundle(db, 'Patient', { gender: 'male' }, OPTS);
      t.equal(bundle.type, 'searchset');
      t.equal(bundle.total, 2, 'total is free when everything is on the page');
      t.same(
        bundle.entry?.map((e) => [e.fullUrl, e.search?.mode]),
        [
          [`${BASE}/Patient/p1`, 'match'],
          [`${BASE}/Patient/p4`, 'match'],
        ],
      );
      t.same(
        matches.map((m) => m.id),
        ['p1', 'p4'],
      );
      t.same(bundle.link, [{ relation: 'self', url: `${BASE}/Patient?gender=male` }]);
      const paged = await searchBundle(db, 'Observation', { code: '4548-4', _count: '1', _total: 'accurate' }, OPTS);
      t.equal(paged.bundle.total, 4, '_total=accurate counts every match');
      t.equal(paged.bundle.entry?.length, 1);
      const none = await searchBundle(db, 'Observation', { code: '4548-4', _count: '1', _total: 'none' }, OPTS);
      t.equal(none.bundle.total, undefined);
      const count = await searchBundle(db, 'Observation', { code: '4548-4', _summary: 'count' }, OPTS);
      t.equal(count.bundle.total, 4);
      t.equal(count.bundle.entry, undefined, '_summary=count: no entries');
      const sys = await searchBundle(db, undefined, { _tag: 'vip' }, OPTS);
      t.equal(sys.bundle.link?.[0].url, `${BASE}?_tag=vip`);
    });

    t.test('_summary and _elements subset the resources and mark them', async (t) => {
      const summary = await searchBundle(db, 'Patient', { _id: 'p2', _summary: 'true' }, OPTS);
      const p2 = summary.bundle.entry?.[0].resource as Patient;
      t.ok(p2.name && p2.birthDate && p2.identifier, 'summary elements kept');
      t.equal(p2.generalPractitioner, undefined, 'non-summary elements dropped');
      t.ok(subsetted(p2), 'SUBSETTED tag');
      const el = await searchBundle(db, 'Observation', { _id: 'o1', _elements: 'subject,value' }, OPTS);
      const o1 = el.bundle.entry?.[0].resource as Observation;
      t.same(Object.keys(o1).sort(), ['code', 'id', 'meta', 'resourceType', 'status', 'subject', 'valueQuantity'], 'listed, choice and mandatory elements');
      t.ok(subsetted(o1));
      const data = await searchBundle(db, 'Patient', { _id: 'p1', _summary: 'data' }, OPTS);
      t.ok(subsetted(data.bundle.entry?.[0].resource));
      const full = await searchBundle(db, 'Patient', { _id: 'p1' }, OPTS);
      t.notOk(subsetted(full.bundle.entry?.[0].resource), 'untouched without subsetting');
      t.same((full.bundle.entry?.[0].resource as Patient).meta?.tag, [{ system: 'urn:county:tag', code: 'vip' }]);
    });

    t.test('lenient handling lists the ignored parameters in an outcome entry', async (t) => {
      const { bundle } = await searchBundle(db, 'Patient', { name: 'zhang', foo: 'bar' }, { ...OPTS, lenient: true });
      const outcome = bundle.entry?.find((e) => e.search?.mode === 'outcome');
      t.equal(bundle.entry?.filter((e) => e.search?.mode === 'match').length, 1);
      t.equal(outcome?.resource?.resourceType, 'OperationOutcome');
      t.same((outcome?.resource as { issue: { expression: string[] }[] }).issue[0].expression, ['foo']);
      await t.rejects(searchBundle(db, 'Patient', { name: 'zhang', foo: 'bar' }, OPTS), { code: 'GW_ERR_UNSUPPORTED_SEARCH' });
    });

    t.test('findMatches: current, non-deleted matches up to the limit', async (t) => {
      const one = await findMatches(db, 'Patient', { identifier: `${ID_CARD}|110101199003071234` }, 2);
      t.same(
        one.map((r) => r.id),
        ['p1'],
      );
      const capped = await findMatches(db, 'Observation', { code: '4548-4' }, 2);
      t.equal(capped.length, 2);
      t.same(await findMatches(db, 'Observation', { _id: 'o6' }, 2), [], 'deleted resources never match');
      await t.rejects(findMatches(db, 'Patient', { nope: 'x' }, 2), { code: 'GW_ERR_UNSUPPORTED_SEARCH' });
    });
  });
}
