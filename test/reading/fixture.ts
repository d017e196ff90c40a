/**
 * The remote-reading tests' starting point: a test app with the demo community and a
 * subscription on completed Tasks (how the township is told a reading is done; delivery is not
 * started, what the writes queued is read from the outbox), and headers acting as a demo client.
 */
import type { Test } from 'tap';
import { createTestApp, FHIR_HEADERS, type TestApp } from '../helpers/app.js';
import type { Backend } from '../helpers/db.js';
import { loadDemoCommunity } from '../../src/demo/index.js';
import { processBundle, SYSTEM_CONTEXT } from '../../src/fhir/index.js';

export interface ReadingSetup {
  readonly ta: TestApp;
  /** The subscription on completed Tasks. */
  readonly subscriptionId: string;
  /** FHIR request headers with a token of the demo client. */
  as(client: string): Promise<Record<string, string>>;
}

export async function readingSetup(t: Test, backend: Backend): Promise<ReadingSetup> {
  const ta = await createTestApp(backend, { SUBSCRIPTION_ALLOWED_HOSTS: '127.0.0.1' });
  t.teardown(() => ta.close());
  const sub = await ta.app.inject({
    method: 'POST',
    url: '/fhir/Subscription',
    headers: FHIR_HEADERS,
    payload: { resourceType: 'Subscription', status: 'requested', reason: 'readings done', criteria: 'Task?status=completed', channel: { type: 'rest-hook', endpoint: 'http://127.0.0.1:9/hook', payload: 'application/fhir+json' } },
  });
  t.equal(sub.statusCode, 201, sub.body.slice(0, 300));
  const subscriptionId = sub.json<{ id: string }>().id;
  await loadDemoCommunity((bundle) => processBundle(ta.fhir.repository, bundle, { ...SYSTEM_CONTEXT, channel: 'demo' }, { minimal: true }));
  return { ta, subscriptionId, as: async (client) => ({ authorization: `Bearer ${await ta.token(client)}`, ...FHIR_HEADERS }) };
}
