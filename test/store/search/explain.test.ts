/**
 * The SQL the engine generates uses the index tables' indexes at volume: 100,000 Observations
 * inserted set-based, ANALYZEd, then EXPLAIN of the engine's own statement for a token search.
 */
import t from 'tap';
import { loadBaseDefinitions } from '../../../src/fhir/definitions.js';
import { explainSearch } from '../../../src/store/search/index.js';
import { BACKENDS, openTestDb } from '../../helpers/db.js';
import { OPTS } from './fixtures.js';

loadBaseDefinitions();

const N = 100_000;

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const tdb = await openTestDb(backend);
    t.teardown(() => tdb.close());
    const { db } = tdb;
    // 100 codes in turn (one Observation in 100 has 4548-4), plus a status row each and a few
    // Patients so that the tables are not all one type.
    await db.query(
      `INSERT INTO resource (rid, type, id, version_id, last_updated, deleted, content)
       SELECT g, 'Observation', 'obs-' || g, 1, timestamptz '2024-01-01' + g * interval '1 second', false,
              '{"resourceType":"Observation","id":"obs-' || g || '"}'
         FROM generate_series(1, $1::int) g`,
      [N],
    );
    await db.query(
      `INSERT INTO sp_token (rid, rtype, code, system, value, display)
       SELECT g, 'Observation', 'code', 'http://loinc.org',
              CASE WHEN g % 100 = 0 THEN '4548-4' ELSE (1000 + g % 100)::text || '-' || (g % 10)::text END, NULL
         FROM generate_series(1, $1::int) g
       UNION ALL
       SELECT g, 'Observation', 'status', 'http://hl7.org/fhir/observation-status', 'final', NULL
         FROM generate_series(1, $1::int) g`,
      [N],
    );
    await db.exec('ANALYZE resource; ANALYZE sp_token;');

    const plan = async (query: Record<string, string>) => {
      const { sql, params } = explainSearch('Observation', query, OPTS);
      const { rows } = await db.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${sql}`, params);
      return rows.map((r) => r['QUERY PLAN']).join('\n');
    };

    const token = await plan({ code: 'http://loinc.org|4548-4' });
    t.match(token, /(Index Scan|Index Only Scan|Bitmap Index Scan) (using|on) sp_token_\w+/, 'an index of sp_token is used');
    t.notMatch(token, /Seq Scan on sp_token/, 'sp_token is not scanned whole');
    t.comment(token);

    const counted = await plan({ code: 'http://loinc.org|4548-4', _count: '100' });
    t.match(counted, /(Index Scan|Index Only Scan|Bitmap Index Scan) (using|on) sp_token_\w+/, 'also with a larger page');
    t.notMatch(counted, /Seq Scan on sp_token/);

    const { sql, params } = explainSearch('Observation', { code: 'http://loinc.org|4548-4' }, OPTS);
    t.notMatch(sql, /4548-4|loinc/, 'values are bound, never in the SQL text');
    t.same(params.slice(0, 5), ['Observation', 'Observation', 'code', 'http://loinc.org', '4548-4']);
    const { rows } = await db.query<{ rid: number }>(sql, params);
    t.equal(rows.length, 21, 'the statement runs: one page and one more row');
    t.ok(
      rows.every((r) => Number(r.rid) % 100 === 0),
      'and finds only the matching code',
    );
  });
}
