/**
 * Sorting and keyset paging: multi-key sorts with missing values last, and next links that stay
 * correct while other resources are created and deleted between pages.
 */
import t from 'tap';
import type { Bundle, Patient } from '@medplum/fhirtypes';
import { loadBaseDefinitions } from '../../../src/fhir/definitions.js';
import { readCurrent, writeVersions, type Db } from '../../../src/store/index.js';
import { searchBundle, type SearchQuery } from '../../../src/store/search/index.js';
import { BACKENDS, openTestDb } from '../../helpers/db.js';
import { BASE, OPTS } from './fixtures.js';

loadBaseDefinitions();

const FAMILIES = ['Zhao', 'Qian', 'Sun', 'Li', 'Zhou', 'Wu', 'Zheng', 'Wang', 'Feng', 'Chen'];

function person(i: number): Patient {
  return {
    resourceType: 'Patient',
    id: `pt${String(i).padStart(3, '0')}`,
    name: [{ family: FAMILIES[i % FAMILIES.length], given: [`G${i}`] }],
    gender: i % 2 ? 'male' : 'female',
    // every fifth has no birth date; the others share a few dates so that ties need the rid
    ...(i % 5 === 0 ? {} : { birthDate: `19${60 + (i % 7)}-01-0${1 + (i % 3)}` }),
  };
}

async function create(db: Db, resources: Patient[], at = '2024-08-01T00:00:00Z'): Promise<void> {
  await db.tx((q) =>
    writeVersions(
      q,
      resources.map((r) => ({ type: 'Patient', id: r.id as string, versionId: 1, lastUpdated: at, method: 'POST' as const, resource: r })),
    ),
  );
}

async function remove(db: Db, id: string): Promise<void> {
  const cur = await readCurrent(db, 'Patient', id);
  if (!cur) throw new Error(id);
  await db.tx((q) =>
    writeVersions(q, [{ rid: cur.rid, type: 'Patient', id, versionId: cur.versionId + 1, lastUpdated: '2024-08-02T00:00:00Z', method: 'DELETE' }]),
  );
}

function nextQuery(bundle: Bundle): SearchQuery | undefined {
  const next = bundle.link?.find((l) => l.relation === 'next')?.url;
  if (!next) return undefined;
  const url = new URL(next);
  const out: Record<string, string[]> = {};
  for (const [k, v] of url.searchParams) (out[k] ??= []).push(v);
  return out;
}

const ids = (b: Bundle) => (b.entry ?? []).map((e) => e.resource?.id as string);

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const tdb = await openTestDb(backend);
    t.teardown(() => tdb.close());
    const { db } = tdb;
    await create(
      db,
      Array.from({ length: 30 }, (_, i) => person(i)),
    );

    /** Follows next links to the end, running `between` after each page. */
    async function walk(query: SearchQuery, between?: (pages: string[][]) => Promise<void>): Promise<string[][]> {
      const pages: string[][] = [];
      let q: SearchQuery | undefined = query;
      while (q) {
        const { bundle } = await searchBundle(db, 'Patient', q, OPTS);
        pages.push(ids(bundle));
        await between?.(pages);
        q = nextQuery(bundle);
        if (pages.length > 50) throw new Error('paging does not end');
      }
      return pages;
    }

    t.test('sort keys: several, descending, missing values last, ties by rid', async (t) => {
      const all = (await searchBundle(db, 'Patient', { _sort: 'birthdate,_id', _count: '100' }, OPTS)).bundle.entry ?? [];
      const births = all.map((e) => (e.resource as Patient).birthDate ?? null);
      const present = births.filter((b) => b !== null) as string[];
      t.same(present, [...present].sort(), 'ascending by birth date');
      t.same(births.slice(present.length), Array(6).fill(null), 'missing last');
      const desc = (await searchBundle(db, 'Patient', { _sort: '-birthdate,-_id', _count: '100' }, OPTS)).bundle.entry ?? [];
      const dBirths = desc.map((e) => (e.resource as Patient).birthDate ?? null);
      t.same(dBirths.slice(0, 24), [...present].sort().reverse(), 'descending by birth date');
      t.same(dBirths.slice(24), Array(6).fill(null), 'missing last when descending too');
      const tied = desc.filter((e) => (e.resource as Patient).birthDate === dBirths[0]).map((e) => e.resource?.id as string);
      t.same(tied, [...tied].sort().reverse(), 'second key descending');
      const byName = (await searchBundle(db, 'Patient', { _sort: 'family,-_lastUpdated,_id', _count: '3' }, OPTS)).bundle;
      t.same(ids(byName), ['pt009', 'pt019', 'pt029'], 'Chen first');
    });

    t.test('pages cover every match exactly once, for each sort', async (t) => {
      for (const sort of [undefined, 'birthdate', '-birthdate,_id', 'family,-gender', '-_lastUpdated', '_id']) {
        const pages = await walk({ _count: '7', ...(sort ? { _sort: sort } : {}) });
        const flat = pages.flat();
        t.equal(flat.length, 30, `${sort}: 30 entries`);
        t.equal(new Set(flat).size, 30, `${sort}: no repeats`);
        t.ok(pages.slice(0, -1).every((p) => p.length === 7), `${sort}: full pages`);
      }
    });

    t.test('inserts and deletes between pages do not make a client skip or repeat a resource', async (t) => {
      for (const sort of [undefined, 'family', '-birthdate,_id']) {
        const before = ids((await searchBundle(db, 'Patient', { _count: '100' }, OPTS)).bundle).filter((id) => !id.startsWith('new'));
        let n = 0;
        const deleted: string[] = [];
        const pages = await walk({ _count: '5', ...(sort ? { _sort: sort } : {}) }, async (sofar) => {
          if (sofar.length > 3) return;
          // A new patient sorting first, and the deletion of one already seen and one not yet seen.
          await create(db, [{ resourceType: 'Patient', id: `new-${sort ?? 'rid'}-${n++}`, name: [{ family: 'Aaa' }], birthDate: '2020-01-01' }]);
          const seen = sofar.flat();
          const seenOne = seen.find((id) => !deleted.includes(id) && !id.startsWith('new'));
          const unseen = before.find((id) => !seen.includes(id) && !deleted.includes(id));
          for (const id of [seenOne, unseen]) {
            if (id) {
              await remove(db, id);
              deleted.push(id);
            }
          }
        });
        const flat = pages.flat();
        const throughout = before.filter((id) => !deleted.includes(id));
        t.same(flat.filter((id) => throughout.includes(id)).sort(), [...throughout].sort(), `${sort ?? 'rid'}: every survivor seen once`);
        t.equal(new Set(flat).size, flat.length, `${sort ?? 'rid'}: nothing repeated`);
        // put the data back for the next sort
        for (const id of deleted) {
          const cur = await readCurrent(db, 'Patient', id);
          const i = Number(id.slice(2));
          await db.tx((q) =>
            writeVersions(q, [{ rid: cur?.rid, type: 'Patient', id, versionId: (cur?.versionId ?? 0) + 1, lastUpdated: '2024-08-03T00:00:00Z', method: 'PUT', resource: person(i) }]),
          );
        }
      }
    });

    t.test('links, _count=0 and bad cursors', async (t) => {
      const first = (await searchBundle(db, 'Patient', { gender: 'male', _count: '4', _sort: 'family' }, OPTS)).bundle;
      t.equal(first.link?.[0].relation, 'self');
      t.match(first.link?.[0].url, `${BASE}/Patient?gender=male&_count=4&_sort=family`);
      const next = nextQuery(first);
      t.ok(next?._cursor, 'next link carries a cursor');
      t.equal(first.total, undefined, 'no total unless cheap or asked');
      const second = (await searchBundle(db, 'Patient', next as SearchQuery, OPTS)).bundle;
      t.match(second.link?.[0].url, /_cursor=/, 'self link of a later page keeps its cursor');
      t.notOk(ids(second).some((id) => ids(first).includes(id)));
      const zero = (await searchBundle(db, 'Patient', { _count: '0' }, OPTS)).bundle;
      t.equal(zero.entry, undefined, '_count=0: no entries');
      t.ok((zero.total ?? 0) >= 30, '_count=0: the total');
      const changedSort = { ...(next as Record<string, string>), _sort: 'family,_id' };
      await t.rejects(searchBundle(db, 'Patient', changedSort, OPTS), { code: 'GW_ERR_INVALID_SEARCH' });
      await t.rejects(searchBundle(db, 'Patient', { _cursor: Buffer.from('[1,"x"]').toString('base64url') }, OPTS), { code: 'GW_ERR_INVALID_SEARCH' });
      const tampered = { _sort: 'birthdate', _cursor: Buffer.from(JSON.stringify([1, "'; DROP TABLE resource; --"])).toString('base64url') };
      await t.rejects(searchBundle(db, 'Patient', tampered, OPTS), 'a tampered cursor is refused by the database cast');
      const count = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM resource');
      t.ok(count.rows[0].n > 0);
    });
  });
}
