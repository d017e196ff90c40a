/**
 * Two gateway processes on one PostgreSQL schema and one Redis share the delivery of a
 * subscription; the one delivering is killed with SIGKILL while a notification is in flight. Every
 * event still reaches the subscriber, none skipped, and a repeated notification carries the same
 * event number. Needs the real servers (TEST_DATABASE_URL and TEST_REDIS_URL), as CI sets them.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { Redis } from 'ioredis';
import { exportJWK, generateKeyPair } from 'jose';
import type { Bundle, Subscription } from '@medplum/fhirtypes';
import { startGateway, type Gateway } from '../../bench/gateway.js';
import { TEST_DATABASE_URL } from '../helpers/db.js';
import { allReceipts, firstReceipts, startReceiver, waitFor } from '../helpers/hook-receiver.js';

const TEST_REDIS_URL = process.env.TEST_REDIS_URL || undefined;
const root = fileURLToPath(new URL('../..', import.meta.url));

async function token(g: Gateway, client: string): Promise<string> {
  const res = await fetch(`${g.baseUrl}/auth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${client}:${client}-secret`).toString('base64')}` },
    body: 'grant_type=client_credentials',
  });
  return ((await res.json()) as { access_token: string }).access_token;
}

/** The dispatcher instance id a gateway process logged at start. */
async function instanceOf(g: Gateway): Promise<string> {
  let id: string | undefined;
  await waitFor('the dispatcher to start', () => {
    const line = g.lines().find((l) => l.includes('subscription dispatcher started'));
    id = line ? (JSON.parse(line) as { instance: string }).instance : undefined;
    return id !== undefined;
  });
  return id as string;
}

t.test('two gateway processes, the delivering one killed mid-delivery', { skip: TEST_DATABASE_URL && TEST_REDIS_URL ? false : 'needs TEST_DATABASE_URL and TEST_REDIS_URL' }, async (t) => {
  const schema = `inst_${randomBytes(4).toString('hex')}`;
  const prefix = `test:inst:${randomBytes(4).toString('hex')}:`;
  const db = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await db.connect();
  await db.query(`CREATE SCHEMA ${schema}`);
  const redis = new Redis(TEST_REDIS_URL as string);
  const receiver = await startReceiver();
  const gateways: Gateway[] = [];
  t.teardown(async () => {
    for (const g of gateways) await g.kill();
    await receiver.stop();
    await db.query(`DROP SCHEMA ${schema} CASCADE`);
    await db.end();
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });

  const url = new URL(TEST_DATABASE_URL as string);
  url.searchParams.set('options', `-c search_path=${schema}`);
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  const env = {
    // Instances behind one load balancer: one public base URL (the tokens' issuer and audience).
    BASE_URL: 'http://gateway.test',
    REDIS_URL: TEST_REDIS_URL as string,
    REDIS_KEY_PREFIX: prefix,
    AUTH_SIGNING_KEY: JSON.stringify({ ...(await exportJWK(privateKey)), alg: 'ES256', kid: 'instances-test' }),
    SUBSCRIPTION_ALLOWED_HOSTS: '127.0.0.1',
    SUBSCRIPTION_POLL_MS: '20',
    SUBSCRIPTION_BACKOFF_BASE_MS: '20',
    SUBSCRIPTION_LEASE_MS: '1000',
    LOG_LEVEL: 'info',
    DB_POOL_MAX: '5',
    MLLP_PORT: '0',
  };
  // One after the other: the first creates the schema, the second finds it migrated.
  gateways.push(await startGateway({ root, databaseUrl: url.toString(), env }));
  gateways.push(await startGateway({ root, databaseUrl: url.toString(), env }));
  const [a, b] = gateways;
  const instances = new Map([
    [await instanceOf(a), a],
    [await instanceOf(b), b],
  ]);
  t.equal(instances.size, 2, 'two dispatchers');

  const platform = await token(a, 'regional-platform');
  const created = await fetch(`${b.baseUrl}/fhir/Subscription`, {
    method: 'POST',
    headers: { 'content-type': 'application/fhir+json', authorization: `Bearer ${platform}` },
    body: JSON.stringify({ resourceType: 'Subscription', status: 'requested', reason: 'regional platform', criteria: 'Encounter?status=finished', channel: { type: 'rest-hook', endpoint: receiver.url } }),
  });
  t.equal(created.status, 201, 'a token of one instance is good at the other');
  const id = ((await created.json()) as Subscription).id as string;

  // At the 50th notification, kill (SIGKILL) the process holding the subscription's lease: it is
  // the one whose request is in flight, before it hears the answer.
  let killed: Gateway | undefined;
  receiver.onNotification = async () => {
    if (killed || allReceipts(receiver.received).length !== 50) return;
    const { rows } = await db.query<{ lease_owner: string | null }>(`SELECT lease_owner FROM ${schema}.subscription_state WHERE id = $1`, [id]);
    const owner = rows[0]?.lease_owner ?? '';
    killed = [...instances].find(([instance]) => owner.includes(instance))?.[1];
    // The answer to this notification is only sent after the sender is dead.
    await killed?.kill();
  };

  const writer = await token(a, 'county-his');
  const total = 200;
  for (let round = 0; round < total / 50; round++) {
    const via = round % 2 === 0 ? a : b;
    if (via === killed) continue;
    const bundle: Bundle = {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: Array.from({ length: 50 }, () => ({
        resource: { resourceType: 'Encounter', status: 'finished', class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' } },
        request: { method: 'POST' as const, url: 'Encounter' },
      })),
    };
    let res: Response;
    try {
      res = await fetch(`${via.baseUrl}/fhir`, { method: 'POST', headers: { 'content-type': 'application/fhir+json', authorization: `Bearer ${writer}` }, body: JSON.stringify(bundle) });
    } catch (e) {
      // The instance was killed while this write was in flight: it committed or not (the count
      // of stored Encounters below decides what must be delivered); any other failure is one.
      if (via !== killed) throw e;
      t.pass(`round ${round + 1} went to the instance killed meanwhile`);
      continue;
    }
    t.equal(res.status, 200, `round ${round + 1} stored`);
  }
  const stored = Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM ${schema}.resource WHERE type = 'Encounter'`)).rows[0].n);
  await waitFor(`${stored} events received`, () => firstReceipts(receiver.received).length >= stored, 120_000);
  t.ok(killed, 'the delivering process was killed');

  const firsts = firstReceipts(receiver.received);
  t.same(
    firsts.map((f) => f.eventNumber),
    Array.from({ length: stored }, (_, i) => i + 1),
    'every event delivered, none skipped, first receipts in order',
  );
  const all = allReceipts(receiver.received);
  const focusOf = new Map(firsts.map((f) => [f.eventNumber, f.focus]));
  t.ok(
    all.every((e) => focusOf.get(e.eventNumber) === e.focus),
    'a repeated notification carries the same event number and focus',
  );
  t.ok(all.length > stored, 'the notification in flight when the process died was sent again by the other');
});
