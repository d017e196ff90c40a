/**
 * The referral scenario of the issue through the API: a village → township → county up-referral
 * and a county → township down-referral, each through every state, with the reserved slot booked,
 * the clinical summary attached; wrong sides, invalid transitions and level-rule violations refused.
 */
import t, { type Test } from 'tap';
import type { Appointment, Bundle, CarePlan, DocumentReference, Encounter, ServiceRequest, Slot, Task } from '@medplum/fhirtypes';
import { randomUUID } from 'node:crypto';
import { BACKENDS } from '../helpers/db.js';
import { COUNTY, ICD10, openWorld, read, TOWNSHIP1, VILLAGE1, VILLAGE2, type World } from './fixture.js';
import { ACCEPTED_AT_EXTENSION, DIRECTION_EXTENSION, FLAG_EXTENSION, OUTPUT_TYPE_SYSTEM } from '../../src/referral/index.js';

/** The receiver's discharge summary and receiving encounter, as Task outputs. */
async function backReport(w: World, taskId: string, receiver: string): Promise<NonNullable<Task['output']>> {
  const task = await read<Task>(w, `Task/${taskId}`);
  const res = await w.transaction(receiver, [
    {
      fullUrl: 'urn:uuid:0b6c2b1e-0000-4000-8000-000000000001',
      request: { method: 'POST', url: 'Encounter' },
      resource: { resourceType: 'Encounter', status: 'finished', class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'IMP' }, subject: { reference: task.for?.reference }, basedOn: [{ reference: task.focus?.reference as string }] } satisfies Encounter,
    },
    {
      fullUrl: 'urn:uuid:0b6c2b1e-0000-4000-8000-000000000002',
      request: { method: 'POST', url: 'DocumentReference' },
      resource: {
        resourceType: 'DocumentReference',
        status: 'current',
        type: { coding: [{ system: 'http://loinc.org', code: '18842-5', display: 'Discharge summary' }] },
        subject: { reference: task.for?.reference },
        context: { encounter: [{ reference: 'urn:uuid:0b6c2b1e-0000-4000-8000-000000000001' }] },
        content: [{ attachment: { contentType: 'text/plain', data: Buffer.from('出院小结：病情稳定，建议下转社区随访').toString('base64') } }],
      } satisfies DocumentReference,
    },
  ]);
  const [enc, doc] = (res.body.entry ?? []).map((e) => (e.response?.location as string).replace(/\/_history\/.*$/, ''));
  return [
    { type: { coding: [{ system: OUTPUT_TYPE_SYSTEM, code: 'back-report' }] }, valueReference: { reference: doc } },
    { type: { coding: [{ system: OUTPUT_TYPE_SYSTEM, code: 'receiving-encounter' }] }, valueReference: { reference: enc } },
  ];
}

/** Walks a referral from requested to completed, checking the refusals on the way. */
async function walk(t: Test, w: World, taskId: string, sender: string, receiver: string, direction: 'up' | 'down'): Promise<Task> {
  // The sender cannot accept its own referral; the receiver cannot skip to completed.
  const own = await w.move(taskId, sender, 'accepted');
  t.equal(own.status, 403, 'the sender may not accept');
  t.match(own.body.issue?.[0]?.diagnostics, /Only the receiving institution/);
  const skip = await w.move(taskId, receiver, 'completed');
  t.equal(skip.status, 422, 'requested → completed is refused');
  t.match(skip.body.issue?.[0]?.diagnostics, /cannot go from requested to completed/);
  for (const status of ['received', 'accepted', 'in-progress']) {
    const r = await w.move(taskId, receiver, status);
    t.equal(r.status, 200, `receiver moves it to ${status}`);
  }
  const cancel = await w.move(taskId, sender, 'cancelled');
  t.equal(cancel.status, 422, 'an in-progress referral is not cancelled');
  let output: Task['output'] = [];
  if (direction === 'up') {
    const bare = await w.move(taskId, receiver, 'completed');
    t.equal(bare.status, 422, 'an up-referral is not completed without its back-report');
    t.match(bare.body.issue?.[0]?.diagnostics, /back-report/);
    output = await backReport(w, taskId, receiver);
  }
  const before = await read<Task>(w, `Task/${taskId}`);
  const done = await w.move(taskId, receiver, 'completed', { output: [...(before.output ?? []), ...output] });
  t.equal(done.status, 200, 'completed');
  const task = await read<Task>(w, `Task/${taskId}`);
  t.equal(task.status, 'completed');
  t.ok(task.extension?.some((e) => e.url === ACCEPTED_AT_EXTENSION), 'the acceptance time is kept');
  const reopen = await w.move(taskId, receiver, 'in-progress');
  t.equal(reopen.status, 422, 'completed is final');
  return task;
}

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const w = await openWorld(backend);
    t.teardown(() => w.ta.close());
    const townshipSlots = await w.publishSlots(TOWNSHIP1, 2);
    const countySlots = await w.publishSlots(COUNTY, 2);

    // The village clinic takes the patient's summary from the shared record and sends it along.
    const summary = await w.ta.app.inject({ url: `/fhir/Patient/${w.patient}/$summary`, headers: await w.headers(VILLAGE1) });
    t.equal(summary.statusCode, 200);
    // Carried as a document (DocumentReference with the summary Bundle as its attachment), the way
    // the shared record carries documents.
    const summaryEntry = {
      fullUrl: `urn:uuid:${randomUUID()}`,
      request: { method: 'POST' as const, url: 'DocumentReference' },
      resource: {
        resourceType: 'DocumentReference',
        status: 'current',
        type: { coding: [{ system: 'http://loinc.org', code: '60591-5', display: 'Patient summary Document' }] },
        subject: { reference: `Patient/${w.patient}` },
        content: [{ attachment: { contentType: 'application/fhir+json', data: Buffer.from(summary.body).toString('base64'), title: '患者摘要' } }],
      } satisfies DocumentReference,
    };

    t.test('village → township up-referral', async (t) => {
      const r = await w.refer({ from: VILLAGE1, to: TOWNSHIP1, direction: 'up', icd10: 'I21.900', supporting: [summaryEntry] });
      t.equal(r.status, 200, JSON.stringify(r.body.issue));
      const sr = await read<ServiceRequest>(w, `ServiceRequest/${r.srId}`);
      const summaryRef = sr.supportingInfo?.[0]?.reference as string;
      t.match(summaryRef, /^DocumentReference\//, 'the summary travels with the referral');
      const doc = (await w.ta.app.inject({ url: `/fhir/${summaryRef}`, headers: await w.headers(TOWNSHIP1) })).json() as DocumentReference;
      const attached = JSON.parse(Buffer.from(doc.content[0].attachment.data as string, 'base64').toString('utf8')) as Bundle;
      t.equal(attached.type, 'document');
      t.equal(attached.entry?.[0]?.resource?.resourceType, 'Composition', 'the receiver reads the summary document');
      const wrong = await w.move(r.taskId as string, COUNTY, 'received');
      t.equal(wrong.status, 403, 'an institution that is neither side cannot touch the referral');
      const task = await walk(t, w, r.taskId as string, VILLAGE1, TOWNSHIP1, 'up');
      // The back-report reaches the sender: its own Task names it, and it reads the document.
      const report = task.output?.find((o) => o.type?.coding?.[0]?.code === 'back-report')?.valueReference?.reference as string;
      const delivered = await w.ta.app.inject({ url: `/fhir/${report}`, headers: await w.headers(VILLAGE1) });
      t.equal(delivered.statusCode, 200, 'the village clinic reads the discharge summary');
      t.equal((delivered.json() as DocumentReference).type?.coding?.[0]?.code, '18842-5');
      // The encounters at both ends, for the deductible counted once: the receiving one is based on the referral.
      const linked = (await w.ta.app.inject({ url: `/fhir/Encounter?based-on=ServiceRequest/${r.srId}` })).json() as Bundle<Encounter>;
      t.equal(linked.entry?.length, 1, 'a billing system finds the receiving encounter by the referral');
      const appointmentRef = task.output?.find((o) => o.valueReference?.reference?.startsWith('Appointment/'))?.valueReference?.reference as string;
      t.ok(appointmentRef, 'accepting booked an appointment');
      const appointment = await read<Appointment>(w, appointmentRef);
      t.equal(appointment.status, 'booked');
      t.equal(appointment.slot?.[0]?.reference, `Slot/${townshipSlots[0]}`, 'in the earliest reserved slot, not the ordinary one');
      t.equal((await read<Slot>(w, `Slot/${townshipSlots[0]}`)).status, 'busy');
      t.equal((await read<Slot>(w, `Slot/${townshipSlots[1]}`)).status, 'free');
    });

    t.test('township → county up-referral, then county → township down-referral', async (t) => {
      const up = await w.refer({ from: TOWNSHIP1, to: COUNTY, direction: 'up', icd10: 'I21.900' });
      t.equal(up.status, 200, JSON.stringify(up.body.issue));
      const upTask = await walk(t, w, up.taskId as string, TOWNSHIP1, COUNTY, 'up');
      const appointment = await read<Appointment>(w, upTask.output?.[0]?.valueReference?.reference as string);
      t.equal(appointment.slot?.[0]?.reference, `Slot/${countySlots[0]}`);

      const down = await w.refer({ from: COUNTY, to: TOWNSHIP1, direction: 'down', icd10: 'I69.300' });
      t.equal(down.status, 200, JSON.stringify(down.body.issue));
      const downTask = await walk(t, w, down.taskId as string, COUNTY, TOWNSHIP1, 'down');
      const planRef = downTask.output?.find((o) => o.type?.coding?.[0]?.code === 'follow-up-plan')?.valueReference?.reference as string;
      t.match(planRef, /^CarePlan\//, 'accepting a down-referral made a follow-up plan');
      const plan = await read<CarePlan>(w, planRef);
      t.equal(plan.activity?.[0]?.detail?.performer?.[0]?.reference, `Organization/${w.org[TOWNSHIP1]}`, 'assigned to the township team');
      t.equal(plan.meta?.tag?.find((x) => x.system?.endsWith('source-institution'))?.code, TOWNSHIP1, 'owned by the township centre');
      const update = await w.ta.app.inject({ method: 'PUT', url: `/fhir/${planRef}`, headers: await w.headers(TOWNSHIP1), payload: { ...plan, description: '每月随访血压' } });
      t.equal(update.statusCode, 200, 'which maintains it');
      t.notOk(downTask.output?.some((o) => o.valueReference?.reference?.startsWith('Appointment/')), 'a down-referral takes no reserved slot');
      t.equal((await read<Slot>(w, `Slot/${townshipSlots[1]}`)).status, 'free');
    });

    t.test('rejection, cancellation and hold', async (t) => {
      const a = await w.refer({ from: VILLAGE1, to: TOWNSHIP1, direction: 'up', icd10: 'J18.900' });
      const noReason = await w.move(a.taskId as string, TOWNSHIP1, 'rejected');
      t.equal(noReason.status, 400, 'a rejection needs a reason');
      const rejected = await w.move(a.taskId as string, TOWNSHIP1, 'rejected', { statusReason: { text: '床位已满' } });
      t.equal(rejected.status, 200);
      const b = await w.refer({ from: VILLAGE1, to: TOWNSHIP1, direction: 'up', icd10: 'J18.900' });
      t.equal((await w.move(b.taskId as string, TOWNSHIP1, 'cancelled')).status, 403, 'the receiver does not cancel');
      t.equal((await w.move(b.taskId as string, VILLAGE1, 'on-hold')).status, 200, 'either side holds');
      t.equal((await w.move(b.taskId as string, VILLAGE1, 'cancelled')).status, 200, 'the sender cancels');
      const del = await w.ta.app.inject({ method: 'DELETE', url: `/fhir/Task/${b.taskId}`, headers: { authorization: (await w.headers(VILLAGE1)).authorization } });
      t.equal(del.statusCode, 422, 'a referral Task is not deleted');
      t.match(del.json().issue?.[0]?.diagnostics, /the sender cancels it/);
      // A JSON Patch is checked like a PUT.
      const c = await w.refer({ from: VILLAGE1, to: TOWNSHIP1, direction: 'up', icd10: 'J18.900' });
      const patch = await w.ta.app.inject({
        method: 'PATCH',
        url: `/fhir/Task/${c.taskId}`,
        headers: { ...(await w.headers(VILLAGE1)), 'content-type': 'application/json-patch+json' },
        payload: [{ op: 'replace', path: '/status', value: 'accepted' }],
      });
      t.equal(patch.statusCode, 403, 'a patch by the sender cannot accept');
      const started = { resourceType: 'Task', status: 'accepted' } as const;
      const bad = await w.transaction(VILLAGE1, [{ request: { method: 'POST', url: 'Task' }, resource: { ...started, intent: 'order', code: (await read<Task>(w, `Task/${c.taskId}`)).code, focus: { reference: `ServiceRequest/${c.srId}` } } }]);
      t.equal(bad.status, 400, 'a referral Task must match its request');
    });

    t.test('level rules', async (t) => {
      const sideways = await w.refer({ from: VILLAGE1, to: VILLAGE2, direction: 'up', icd10: 'I10.x00' });
      t.equal(sideways.status, 422, 'village → village is no up-referral');
      t.match(sideways.body.issue?.[0]?.diagnostics, /must go to a higher level: village → village/);
      const excepted = await w.refer({ from: VILLAGE1, to: VILLAGE2, direction: 'up', icd10: 'I10.x00', exception: '本村医生外出培训，邻村代诊' });
      t.equal(excepted.status, 200, 'allowed as an exception with a reason');
      const untreated = await w.refer({ from: COUNTY, to: TOWNSHIP1, direction: 'down', icd10: 'I21.900' });
      t.equal(untreated.status, 422, 'the township does not treat acute myocardial infarction');
      t.match(untreated.body.issue?.[0]?.diagnostics, /township level does not treat I21\.900/);
      const flagged = await w.refer({ from: COUNTY, to: TOWNSHIP1, direction: 'down', icd10: 'I21.900', exception: '患者坚持回乡，家属签字' });
      t.equal(flagged.status, 200);
      const sr = await read<ServiceRequest>(w, `ServiceRequest/${flagged.srId}`);
      t.match(sr.extension?.find((e) => e.url === FLAG_EXTENSION)?.valueString, /does not treat I21\.900/, 'an excepted down-referral is flagged');
      const upward = await w.refer({ from: COUNTY, to: TOWNSHIP1, direction: 'up', icd10: 'I10.x00' });
      t.equal(upward.status, 422, 'county → township is no up-referral');
      const noReason = await w.refer({ from: TOWNSHIP1, to: COUNTY, direction: 'up', icd10: 'R69' });
      t.equal(noReason.status, 200, 'any condition goes up');
      const byOther = await w.transaction(TOWNSHIP1, [
        {
          request: { method: 'POST', url: 'ServiceRequest' },
          resource: { ...(await read<ServiceRequest>(w, `ServiceRequest/${noReason.srId}`)), id: undefined, meta: undefined, requester: { reference: `Organization/${w.org[VILLAGE1]}` } },
        },
      ]);
      t.equal(byOther.status, 403, 'a referral is sent only by its requester');
      // The condition may come as a Condition the request names (reasonReference), as HL7 DG1 maps it.
      const base = await read<ServiceRequest>(w, `ServiceRequest/${noReason.srId}`);
      const byCondition = (code: string) =>
        w.transaction(COUNTY, [
          { fullUrl: 'urn:uuid:5d1c0f6e-0000-4000-8000-00000000000c', request: { method: 'POST', url: 'Condition' }, resource: { resourceType: 'Condition', subject: base.subject as { reference: string }, code: { coding: [{ system: ICD10, code }] } } },
          {
            request: { method: 'POST', url: 'ServiceRequest' },
            resource: { ...base, id: undefined, meta: undefined, extension: [{ url: DIRECTION_EXTENSION, valueCode: 'down' }], reasonCode: undefined, reasonReference: [{ reference: 'urn:uuid:5d1c0f6e-0000-4000-8000-00000000000c' }], requester: { reference: `Organization/${w.org[COUNTY]}` }, performer: [{ reference: `Organization/${w.org[TOWNSHIP1]}` }] },
          },
        ]);
      t.equal((await byCondition('I21.900')).status, 422, 'a Condition the township does not treat is refused');
      t.equal((await byCondition('I10.x00')).status, 200, 'one it treats is accepted');
      const none = await w.transaction(COUNTY, [{ request: { method: 'POST', url: 'ServiceRequest' }, resource: { ...base, id: undefined, meta: undefined, reasonCode: undefined, requester: { reference: `Organization/${w.org[COUNTY]}` } } }]);
      t.equal(none.status, 400, 'a referral without a condition is refused');
      // A referral record without a direction (as older HIS feeds send) is stored as it is, outside the workflow.
      const plain = await read<ServiceRequest>(w, `ServiceRequest/${noReason.srId}`);
      const record = await w.transaction(TOWNSHIP1, [{ request: { method: 'POST', url: 'ServiceRequest' }, resource: { ...plain, id: undefined, meta: undefined, extension: [], performer: undefined } }]);
      t.equal(record.status, 200);
      const recordId = (record.body.entry?.[0]?.response?.location as string).split('/')[1];
      const task = await read<Task>(w, `Task/${noReason.taskId}`);
      const orphan = await w.transaction(TOWNSHIP1, [{ request: { method: 'POST', url: 'Task' }, resource: { ...task, id: undefined, meta: undefined, extension: undefined, status: 'requested', focus: { reference: `ServiceRequest/${recordId}` } } }]);
      t.equal(orphan.status, 400, 'but no referral Task can name it');
      t.match(orphan.body.issue?.[0]?.diagnostics, /with its direction/);
    });
  });
}
