/**
 * Feed statistics (GET /ingest/feeds): per institution and feed, messages stored and dead
 * letters of the last hour and day, the last message, the hourly series and the stale flag;
 * for the community administrator only.
 */
import t from 'tap';
import { BACKENDS } from '../helpers/db.js';
import { createTestApp } from '../helpers/app.js';
import { countyLabOru } from '../helpers/hl7-samples.js';
import { feedStatistics, type FeedReport } from '../../src/ingest/feeds.js';

const HL7 = { 'content-type': 'x-application/hl7-v2+er7' };
const COUNTY = '1233042447101234XX';

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const ta = await createTestApp(backend);
    t.teardown(() => ta.close());
    const county = { authorization: `Bearer ${await ta.token('county-his')}` };
    for (const [i, mrn] of ['F-1', 'F-2'].entries()) {
      const m = countyLabOru({ controlId: `FEED-${i}`, mrn, given: '测试' });
      const r = await ta.app.inject({ method: 'POST', url: '/ingest/hl7v2', headers: { ...HL7, ...county }, payload: m.bytes });
      t.match(r.body, /MSA\|AA/, 'stored');
    }
    // Not mappable (no PID-3): a dead letter of the same sender.
    const bad = 'MSH|^~\\&|QSLIS|QSXRMYY|COUNTY-HIE|QS|20261120081500||ORU^R01^ORU_R01|FEED-BAD|P|2.5\rPID|1||||钱^立新||19751103|M\rOBR|1|O-1|F-1|2345-7^Glucose^LN\rOBX|1|NM|2345-7^Glucose^LN||6.2|mmol/L|3.9-6.1|H|||F\r';
    t.match((await ta.app.inject({ method: 'POST', url: '/ingest/hl7v2', headers: { ...HL7, ...county }, payload: bad })).body, /MSA\|AE/);

    const res = await ta.app.inject({ url: '/ingest/feeds?hours=6' });
    t.equal(res.statusCode, 200);
    const report = res.json<FeedReport>();
    t.equal(report.hours, 6);
    const lis = report.feeds.find((f) => f.source === 'county-lis');
    t.ok(lis, 'the county laboratory is listed');
    t.match(lis, { institution: COUNTY, kind: 'hl7v2', channels: ['http'], lastHour: 2, lastDay: 2, errorsLastHour: 1, errorsLastDay: 1, stale: false });
    t.equal(lis?.hourly.length, 6);
    t.equal(lis?.hourly[5], 2, 'the current hour is the last of the series');
    t.ok(lis?.lastMessage && lis.lastError, 'times of the last message and the last error');
    const village = report.feeds.find((f) => f.source === 'village1-his');
    t.match(village, { lastDay: 0, stale: false }, 'a registered sender that sent nothing is listed, not stale');

    // Two hours later, with nothing new, the busy feed is stale.
    const later = await feedStatistics(ta.tdb.db, ta.app.ingest.senders, { now: new Date(Date.now() + 2 * 3_600_000), staleMinutes: 60, institutionOfClient: () => undefined });
    t.match(later.feeds.find((f) => f.source === 'county-lis'), { stale: true, lastDay: 2 });

    t.equal((await ta.app.inject({ url: '/ingest/feeds', headers: county })).statusCode, 403, 'a HIS may not see the feeds');
    t.equal((await ta.app.inject({ url: '/ingest/feeds?hours=0' })).statusCode, 400);
    const { rows } = await ta.tdb.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM audit_event WHERE client_id = 'admin' AND content LIKE $1`, [
      `%${Buffer.from('feeds?hours=6').toString('base64')}%`,
    ]);
    t.equal(rows[0].n, 1, 'the statistics read is audited');
  });
}
