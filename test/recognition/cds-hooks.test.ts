/**
 * The CDS Hooks service: discovery, order-select and order-sign requests and responses checked
 * against schemas written from the CDS Hooks 2.0 specification; a recognisable HbA1c gives a card
 * in the same request, with a suggestion to delete the draft order and a link to the result.
 */
import t from 'tap';
import { randomUUID } from 'node:crypto';
import { Ajv2019 } from 'ajv/dist/2019.js';
import addFormats from 'ajv-formats';
import type { Observation, Patient } from '@medplum/fhirtypes';
import { createTestApp, FHIR_HEADERS } from '../helpers/app.js';
import { BACKENDS } from '../helpers/db.js';
import { loadDemoCommunity } from '../../src/demo/index.js';
import { processBundle, SYSTEM_CONTEXT } from '../../src/fhir/index.js';
import { today } from '../../src/recognition/index.js';
import { DISCOVERY_RESPONSE, HOOK_REQUEST, HOOK_RESPONSE } from './cds-hooks-schemas.js';

const ajv = new Ajv2019({ allErrors: true, strict: false });
addFormats.default(ajv);
const validDiscovery = ajv.compile(DISCOVERY_RESPONSE);
const validRequest = ajv.compile(HOOK_REQUEST);
const validResponse = ajv.compile(HOOK_RESPONSE);

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const ta = await createTestApp(backend);
    t.teardown(() => ta.close());
    const { app } = ta;
    await loadDemoCommunity((bundle) => processBundle(ta.fhir.repository, bundle, { ...SYSTEM_CONTEXT, channel: 'demo' }, { minimal: true }));
    const township = { authorization: `Bearer ${await ta.token('township1-his')}` };
    const county = { authorization: `Bearer ${await ta.token('county-his')}`, ...FHIR_HEADERS };

    await app.inject({ method: 'POST', url: '/recognition/qualifications', payload: { institution: '1233042447101234XX', category: 'lab', status: 'qualified', effectiveFrom: '2020-01-01' } });
    const patient = (await app.inject({ method: 'POST', url: '/fhir/Patient', headers: county, payload: { resourceType: 'Patient', name: [{ family: '孙', given: ['二'] }] } satisfies Patient })).json() as Patient;
    const result = (await app.inject({
      method: 'POST',
      url: '/fhir/Observation',
      headers: county,
      payload: {
        resourceType: 'Observation',
        status: 'final',
        code: { coding: [{ system: 'http://loinc.org', code: '4548-4' }] },
        subject: { reference: `Patient/${patient.id}` },
        // Two days before today in the community's time zone.
        effectiveDateTime: `${new Date(Date.parse(`${today()}T00:00:00Z`) - 2 * 86_400_000).toISOString().slice(0, 10)}T09:00:00+08:00`,
        valueQuantity: { value: 6.8, unit: '%', system: 'http://unitsofmeasure.org', code: '%' },
      } satisfies Observation,
    })).json() as Observation;

    const draftOrders = {
      resourceType: 'Bundle',
      type: 'collection',
      entry: [
        { resource: { resourceType: 'ServiceRequest', id: 'draft-hba1c', status: 'draft', intent: 'order', subject: { reference: `Patient/${patient.id}` }, code: { coding: [{ system: 'http://loinc.org', code: '4548-4' }] } } },
        { resource: { resourceType: 'ServiceRequest', id: 'draft-cbc', status: 'draft', intent: 'order', subject: { reference: `Patient/${patient.id}` }, code: { coding: [{ system: 'http://loinc.org', code: '58410-2' }] } } },
      ],
    };
    const call = async (id: string, hook: string, context: Record<string, unknown>) => {
      const body = { hook, hookInstance: randomUUID(), fhirServer: 'http://gateway.test/fhir', context: { userId: 'Practitioner/example', patientId: patient.id, draftOrders, ...context } };
      t.ok(validRequest(body), `the test's request is a CDS Hooks request ${JSON.stringify(validRequest.errors)}`);
      return app.inject({ method: 'POST', url: `/cds-services/${id}`, headers: township, payload: body });
    };

    t.test('discovery, without a token', async (t) => {
      const r = await ta.anonymous({ url: '/cds-services' });
      t.equal(r.statusCode, 200);
      const body = r.json();
      t.ok(validDiscovery(body), JSON.stringify(validDiscovery.errors));
      t.same(body.services.map((s: { hook: string }) => s.hook).sort(), ['order-select', 'order-sign']);
    });

    t.test('order-sign: a card for the recognisable HbA1c, none for the CBC', async (t) => {
      const r = await call('recognition-order-sign', 'order-sign', {});
      t.equal(r.statusCode, 200, r.body.slice(0, 300));
      const body = r.json();
      t.ok(validResponse(body), JSON.stringify(validResponse.errors));
      t.equal(body.cards.length, 1);
      const [card] = body.cards;
      t.match(card.summary, /Hemoglobin A1c from 青山县人民医院, 2 days ago, 6\.8 %: recognised/);
      t.equal(card.indicator, 'info');
      t.same(card.suggestions[0].actions[0], { type: 'delete', description: 'Remove the draft order for Hemoglobin A1c', resourceId: ['ServiceRequest/draft-hba1c'] });
      t.equal(card.links[0].url, `http://gateway.test/fhir/Observation/${result.id}`);
    });

    t.test('order-select: only the selected orders', async (t) => {
      const cbc = await call('recognition-order-select', 'order-select', { selections: ['ServiceRequest/draft-cbc'] });
      t.same(cbc.json(), { cards: [] });
      const hba1c = await call('recognition-order-select', 'order-select', { selections: ['ServiceRequest/draft-hba1c'] });
      t.ok(validResponse(hba1c.json()));
      t.equal(hba1c.json().cards.length, 1);
    });

    t.test('bad calls', async (t) => {
      t.equal((await call('recognition-order-select', 'order-select', {})).statusCode, 400, 'order-select without selections');
      t.equal((await call('recognition-order-sign', 'order-select', { selections: ['ServiceRequest/draft-cbc'] })).statusCode, 400, 'the wrong hook for the service');
      t.equal((await call('no-such-service', 'order-sign', {})).statusCode, 404);
      const noContext = await app.inject({ method: 'POST', url: '/cds-services/recognition-order-sign', headers: township, payload: { hook: 'order-sign', hookInstance: randomUUID() } });
      t.equal(noContext.statusCode, 400);
      t.equal(noContext.json().resourceType, 'OperationOutcome');
      const anonymous = await ta.anonymous({ method: 'POST', url: '/cds-services/recognition-order-sign', payload: { hook: 'order-sign', hookInstance: randomUUID(), context: {} } });
      t.equal(anonymous.statusCode, 401);
    });
  });
}
