/**
 * A real FHIR client library against a listening gateway: @medplum/core's MedplumClient over
 * HTTP on loopback, as a HIS vendor's integration would talk to it.
 */
import t from 'tap';
import { MedplumClient, OperationOutcomeError } from '@medplum/core';
import type { Bundle, BundleEntry, Observation, Patient } from '@medplum/fhirtypes';
import { BACKENDS } from '../helpers/db.js';
import { createTestApp } from '../helpers/app.js';

const MRN = 'https://fhir.county-hie.cn/mrn/county-hospital';

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const ta = await createTestApp(backend);
    t.teardown(() => ta.close());
    const address = await ta.app.listen({ host: '127.0.0.1', port: 0 });
    const client = new MedplumClient({ baseUrl: `${address}/`, fhirUrlPath: 'fhir', cacheTime: 0, fetch: globalThis.fetch });
    // As the county hospital's HIS would: a token from the gateway's token endpoint.
    const tokenResponse = await fetch(`${address}/auth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from('county-his:county-his-secret').toString('base64')}` },
      body: 'grant_type=client_credentials',
    });
    t.equal(tokenResponse.status, 200);
    client.setAccessToken(((await tokenResponse.json()) as { access_token: string }).access_token);

    const patient = await client.createResource<Patient>({
      resourceType: 'Patient',
      identifier: [{ system: MRN, value: 'CLIENT-1' }],
      name: [{ family: '赵', given: ['六'] }],
      birthDate: '1960-02-29',
    });

    t.test('create, read, update', async (t) => {
      t.ok(patient.id);
      const read = await client.readResource('Patient', patient.id);
      t.equal(read.name?.[0].family, '赵');
      const updated = await client.updateResource<Patient>({ ...read, gender: 'male' });
      t.equal(updated.meta?.versionId, '2');
      t.equal(updated.gender, 'male');
    });

    t.test('a stale If-Match gets 412', async (t) => {
      const current = await client.readResource('Patient', patient.id);
      await client.updateResource<Patient>({ ...current, active: true }, { headers: { 'If-Match': `W/"${current.meta?.versionId}"` } });
      const err = await client
        .updateResource<Patient>({ ...current, active: false }, { headers: { 'If-Match': `W/"${current.meta?.versionId}"` } })
        .then(() => undefined)
        .catch((e: unknown) => e);
      t.ok(err instanceof OperationOutcomeError, 'the client raises the OperationOutcome');
      t.equal((err as OperationOutcomeError).outcome.issue[0].code, 'conflict');
      const raw = await fetch(`${address}/fhir/Patient/${patient.id}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/fhir+json', 'if-match': 'W/"1"', authorization: `Bearer ${client.getAccessToken()}` },
        body: JSON.stringify(current),
      });
      t.equal(raw.status, 412);
    });

    t.test('a 30-entry transaction with urn:uuid references', async (t) => {
      const entry: BundleEntry[] = [];
      for (let i = 0; i < 15; i++) {
        const fullUrl = `urn:uuid:7d1c1c1e-1111-4000-8000-${String(i).padStart(12, '0')}`;
        entry.push({ fullUrl, resource: { resourceType: 'Patient', identifier: [{ system: MRN, value: `TX-${i}` }] }, request: { method: 'POST', url: 'Patient' } });
        entry.push({
          resource: { resourceType: 'Observation', status: 'final', code: { coding: [{ system: 'http://loinc.org', code: '4548-4' }] }, subject: { reference: fullUrl } },
          request: { method: 'POST', url: 'Observation' },
        });
      }
      const resp = await client.executeBatch({ resourceType: 'Bundle', type: 'transaction', entry });
      t.equal(resp.entry?.length, 30);
      t.ok(resp.entry?.every((e) => e.response?.status?.startsWith('201')));
      const obs = resp.entry?.[1].resource as Observation;
      t.equal(obs.subject?.reference, `Patient/${(resp.entry?.[0].resource as Patient).id}`);
    });

    t.test('search with _include, and 250 results paged by 50', async (t) => {
      const batch: Bundle = {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: Array.from({ length: 250 }, (_, i) => ({
          resource: {
            resourceType: 'Observation',
            status: 'final',
            code: { coding: [{ system: 'http://loinc.org', code: '2345-7' }] },
            subject: { reference: `Patient/${patient.id}` },
            effectiveDateTime: new Date(Date.UTC(2024, 0, 1) + i * 3_600_000).toISOString(),
            valueQuantity: { value: 4 + (i % 30) / 10, unit: 'mmol/L' },
          } as Observation,
          request: { method: 'POST' as const, url: 'Observation' },
        })),
      };
      await client.executeBatch(batch);

      const withPatient = await client.search('Observation', { code: 'http://loinc.org|2345-7', _include: 'Observation:subject', _count: '5' });
      t.equal(withPatient.entry?.filter((e) => e.search?.mode === 'match').length, 5);
      const included = withPatient.entry?.filter((e) => e.search?.mode === 'include') ?? [];
      t.equal(included.length, 1, 'the patient is included once');
      t.equal(included[0].resource?.id, patient.id);

      const seen = new Set<string>();
      let pages = 0;
      for await (const page of client.searchResourcePages('Observation', { code: 'http://loinc.org|2345-7', _count: '50', _sort: 'date' })) {
        pages++;
        for (const o of page) seen.add(o.id);
        if (pages > 10) break;
      }
      t.equal(pages, 5);
      t.equal(seen.size, 250, 'every result exactly once');
    });
  });
}
