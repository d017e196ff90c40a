/**
 * $referral-stats against counts the test keeps itself: referrals sent up, down and out of the
 * county, returned after out-of-county treatment, acceptance, median time to accept and overdue
 * open referrals, for one institution, for the whole community, and outside the period.
 */
import t from 'tap';
import type { Organization, Parameters, Task } from '@medplum/fhirtypes';
import { BACKENDS } from '../helpers/db.js';
import { COUNTY, openWorld, read, TOWNSHIP1, VILLAGE1, type ReferralSpec } from './fixture.js';
import { ACCEPTED_AT_EXTENSION } from '../../src/referral/index.js';
import { USCC_SYSTEM } from '../../src/fhir/systems.js';

const OUTSIDE = '12330000470000111K';
const HOUR = 3_600_000;

interface Sent extends ReferralSpec {
  outcome: 'accepted' | 'rejected' | 'open' | 'received';
  taskId?: string;
}

const value = (p: Parameters, name: string) => {
  const x = p.parameter?.find((q) => q.name === name);
  return x?.valueInteger ?? x?.valueDecimal;
};

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const w = await openWorld(backend);
    t.teardown(() => w.ta.close());
    const outside = await w.ta.app.inject({
      method: 'POST',
      url: '/fhir/Organization',
      payload: { resourceType: 'Organization', name: '省人民医院', identifier: [{ system: USCC_SYSTEM, value: OUTSIDE }], active: true } satisfies Organization,
    });
    t.equal(outside.statusCode, 201);
    w.org[OUTSIDE] = (outside.json() as Organization).id as string;
    await w.publishSlots(TOWNSHIP1, 5);
    await w.publishSlots(COUNTY, 5);

    const march = (day: number, hour = 9) => `2026-03-${String(day).padStart(2, '0')}T${String(hour).padStart(2, '0')}:00:00+08:00`;
    const sent: Sent[] = [
      { from: TOWNSHIP1, to: COUNTY, direction: 'up', icd10: 'I21.900', authoredOn: march(2), outcome: 'accepted' },
      { from: TOWNSHIP1, to: COUNTY, direction: 'up', icd10: 'I63.900', authoredOn: march(5), outcome: 'open' },
      { from: TOWNSHIP1, to: COUNTY, direction: 'up', icd10: 'C34.900', authoredOn: '2026-02-15T09:00:00+08:00', outcome: 'accepted' },
      { from: TOWNSHIP1, to: OUTSIDE, direction: 'up', icd10: 'C34.900', authoredOn: march(6), outcome: 'open' },
      { from: TOWNSHIP1, to: VILLAGE1, direction: 'down', icd10: 'I10.x00', authoredOn: march(7), outcome: 'accepted' },
      { from: TOWNSHIP1, to: VILLAGE1, direction: 'down', icd10: 'E11.900', authoredOn: march(8), outcome: 'open' },
      { from: VILLAGE1, to: TOWNSHIP1, direction: 'up', icd10: 'J18.900', authoredOn: march(3), outcome: 'accepted' },
      { from: VILLAGE1, to: TOWNSHIP1, direction: 'up', icd10: 'J44.100', authoredOn: march(4, 8), outcome: 'accepted' },
      { from: VILLAGE1, to: TOWNSHIP1, direction: 'up', icd10: 'J18.900', authoredOn: march(10), outcome: 'rejected' },
      { from: VILLAGE1, to: TOWNSHIP1, direction: 'up', icd10: 'K29.700', authoredOn: march(11), outcome: 'open' },
      { from: COUNTY, to: TOWNSHIP1, direction: 'down', icd10: 'I69.300', authoredOn: march(12), outcome: 'received' },
      { from: OUTSIDE, to: TOWNSHIP1, direction: 'down', icd10: 'Z50.100', authoredOn: march(13), outcome: 'accepted' },
      { from: OUTSIDE, to: TOWNSHIP1, direction: 'down', icd10: 'Z50.100', authoredOn: '2026-04-01T09:00:00+08:00', outcome: 'accepted' },
    ];
    for (const s of sent) {
      const r = await w.refer(s);
      t.equal(r.status, 200, JSON.stringify(r.body.issue));
      s.taskId = r.taskId;
      if (s.outcome === 'accepted') t.equal((await w.move(r.taskId as string, s.to, 'accepted')).status, 200);
      if (s.outcome === 'received') t.equal((await w.move(r.taskId as string, s.to, 'received')).status, 200);
      if (s.outcome === 'rejected') t.equal((await w.move(r.taskId as string, s.to, 'rejected', { statusReason: { text: '无床位' } })).status, 200);
    }

    // The expected figures, from the test's own list.
    const inMarch = (s: Sent) => (s.authoredOn as string) >= '2026-03-01' && (s.authoredOn as string) < '2026-04-01';
    const expected = async (inst: string | undefined, period: (s: Sent) => boolean) => {
      const mine = (u: string) => inst === undefined || u === inst;
      const list = sent.filter(period);
      const received = list.filter((s) => mine(s.to));
      const accepted = received.filter((s) => s.outcome === 'accepted');
      const rejected = received.filter((s) => s.outcome === 'rejected');
      const hours: number[] = [];
      for (const s of accepted) {
        const task = await read<Task>(w, `Task/${s.taskId}`);
        hours.push((Date.parse(task.extension?.find((e) => e.url === ACCEPTED_AT_EXTENSION)?.valueDateTime as string) - Date.parse(s.authoredOn as string)) / HOUR);
      }
      hours.sort((a, b) => a - b);
      const median = hours.length % 2 ? hours[(hours.length - 1) / 2] : (hours[hours.length / 2 - 1] + hours[hours.length / 2]) / 2;
      return {
        up: list.filter((s) => mine(s.from) && s.direction === 'up').length,
        down: list.filter((s) => mine(s.from) && s.direction === 'down').length,
        outOfCounty: list.filter((s) => mine(s.from) && s.to === OUTSIDE).length,
        returnedAfterOutOfCounty: received.filter((s) => s.from === OUTSIDE).length,
        received: received.length,
        accepted: accepted.length,
        rejected: rejected.length,
        // Every open one is dated in the past, beyond 72 hours.
        overdueOpen: received.filter((s) => s.outcome === 'open' || s.outcome === 'received').length,
        acceptanceRate: Math.round((accepted.length / (accepted.length + rejected.length)) * 10000) / 10000,
        medianHoursToAccept: Math.round(median * 100) / 100,
      };
    };
    const figures = (p: Parameters) => Object.fromEntries(['up', 'down', 'outOfCounty', 'returnedAfterOutOfCounty', 'received', 'accepted', 'rejected', 'overdueOpen', 'acceptanceRate', 'medianHoursToAccept'].map((k) => [k, value(p, k)]));

    const township = await w.ta.app.inject({ url: '/fhir/$referral-stats?start=2026-03-01&end=2026-03-31', headers: await w.headers(TOWNSHIP1) });
    t.equal(township.statusCode, 200);
    const mineMarch = await expected(TOWNSHIP1, inMarch);
    t.same(figures(township.json() as Parameters), mineMarch, 'the township centre in March');
    t.equal(mineMarch.up, 3, 'sanity: the list has what the test means (two to the county, one out of the county)');
    t.equal(mineMarch.returnedAfterOutOfCounty, 1);

    const all = await w.ta.app.inject({ method: 'POST', url: '/fhir/$referral-stats', headers: { 'content-type': 'application/fhir+json' }, payload: { resourceType: 'Parameters', parameter: [] } });
    t.same(figures(all.json() as Parameters), await expected(undefined, () => true), 'the whole community, all time (administrator)');

    const tight = await w.ta.app.inject({ url: `/fhir/$referral-stats?institution=${COUNTY}&start=2026-03-01&end=2026-03-31&deadlineHours=876000`, headers: await w.headers(COUNTY) });
    t.equal(value(tight.json() as Parameters, 'overdueOpen'), 0, 'nothing is overdue under a 100-year deadline');
    t.equal(value(tight.json() as Parameters, 'received'), (await expected(COUNTY, inMarch)).received);

    const other = await w.ta.app.inject({ url: `/fhir/$referral-stats?institution=${COUNTY}`, headers: await w.headers(TOWNSHIP1) });
    t.equal(other.statusCode, 403, 'an institution sees its own figures only');
    const bad = await w.ta.app.inject({ url: '/fhir/$referral-stats?start=March', headers: await w.headers(TOWNSHIP1) });
    t.equal(bad.statusCode, 400);
    const unknown = await w.ta.app.inject({ url: '/fhir/$referral-stats?from=2026-03-01', headers: await w.headers(TOWNSHIP1) });
    t.equal(unknown.statusCode, 400);
  });
}
