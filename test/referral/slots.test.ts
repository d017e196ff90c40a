/**
 * Reserved referral slots under concurrency: 50 acceptances competing for 10 reserved slots book
 * exactly 10 appointments, each in its own slot, and the other 40 are refused with a clear outcome
 * and leave their referral as it was. Green-channel referrals are accepted without a slot.
 */
import t from 'tap';
import type { Appointment, Bundle, Slot, Task } from '@medplum/fhirtypes';
import { BACKENDS } from '../helpers/db.js';
import { COUNTY, openWorld, read, TOWNSHIP1 } from './fixture.js';
import { BUSINESS_STATUS_SYSTEM } from '../../src/referral/index.js';

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const w = await openWorld(backend);
    t.teardown(() => w.ta.close());
    const slots = await w.publishSlots(COUNTY, 10);
    const tasks: string[] = [];
    for (let i = 0; i < 50; i++) {
      const r = await w.refer({ from: TOWNSHIP1, to: COUNTY, direction: 'up', icd10: 'I21.900' });
      if (r.status !== 200) throw new Error(JSON.stringify(r.body));
      tasks.push(r.taskId as string);
    }
    const results = await Promise.all(tasks.map((id) => w.move(id, COUNTY, 'accepted')));
    const accepted = results.filter((r) => r.status === 200);
    const refused = results.filter((r) => r.status !== 200);
    t.equal(accepted.length, 10, 'exactly 10 acceptances succeed');
    t.equal(refused.length, 40);
    t.ok(refused.every((r) => r.status === 409), 'the rest are refused with 409');
    t.ok(refused.every((r) => r.body.issue?.[0]?.code === 'conflict' && /No reserved referral slot is free/.test(r.body.issue?.[0]?.diagnostics ?? '')), 'and a clear outcome');

    const booked = ((await w.ta.app.inject({ url: '/fhir/Appointment?status=booked&_count=100' })).json() as Bundle<Appointment>).entry ?? [];
    t.equal(booked.length, 10, '10 appointments booked');
    const used = new Set(booked.map((e) => e.resource?.slot?.[0]?.reference));
    t.equal(used.size, 10, 'each in a slot of its own');
    t.same([...used].sort(), slots.map((s) => `Slot/${s}`).sort(), 'all of them reserved slots');
    for (const s of slots) t.equal((await read<Slot>(w, `Slot/${s}`)).status, 'busy');
    const states = await Promise.all(tasks.map((id) => read<Task>(w, `Task/${id}`)));
    t.equal(states.filter((s) => s.status === 'accepted').length, 10);
    t.equal(states.filter((s) => s.status === 'requested').length, 40, 'refused acceptances leave the referral requested');

    t.test('green channel: accepted without a slot, flagged for immediate handling', async (t) => {
      const r = await w.refer({ from: TOWNSHIP1, to: COUNTY, direction: 'up', icd10: 'I21.900', priority: 'stat' });
      const res = await w.move(r.taskId as string, COUNTY, 'accepted');
      t.equal(res.status, 200, 'no free slot is needed');
      t.equal(res.body.businessStatus?.coding?.[0]?.system, BUSINESS_STATUS_SYSTEM);
      t.equal(res.body.businessStatus?.coding?.[0]?.code, 'green-channel');
      t.notOk(res.body.output?.length, 'no appointment');
    });
  });
}
