/**
 * Baseline HTTP servers the gateway is compared with, run as a child process like the gateway
 * (bench/baselines/index.ts starts them):
 *
 *   fastify-pg  Fastify + `pg`, the least a read or create can do: one row of a jsonb table by
 *               primary key, one single-row INSERT. DATABASE_URL selects the database (and schema).
 *   medplum     @medplum/fhir-router's FhirRouter with its in-memory repository behind Fastify.
 *
 * Both serve GET /fhir/Patient/:id and POST /fhir/Patient; GET /ids lists the seeded ids.
 * Environment: BASELINE (fastify-pg | medplum), PORT, DATABASE_URL, BASELINE_PATIENTS, DB_POOL_MAX.
 */
import Fastify from 'fastify';
import pg from 'pg';
import { randomUUID } from 'node:crypto';
import { getStatus } from '@medplum/core';
import { FhirRouter, MemoryRepository, makeSimpleRequest } from '@medplum/fhir-router';
import type { Patient } from '@medplum/fhirtypes';
import { patient } from '../seed.js';

const kind = process.env.BASELINE;
const port = Number(process.env.PORT ?? 0);
const patients = Number(process.env.BASELINE_PATIENTS ?? 10_000);
const FHIR_JSON = 'application/fhir+json';

const app = Fastify({ logger: false });
app.addContentTypeParser(FHIR_JSON, { parseAs: 'string' }, (_req, body, done) => {
  try {
    done(null, JSON.parse(body as string));
  } catch (e) {
    done(e as Error);
  }
});
let ids: string[] = [];
let close: () => Promise<void> = async () => undefined;

if (kind === 'fastify-pg') {
  const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: Number(process.env.DB_POOL_MAX ?? 20) });
  await pool.query('CREATE TABLE IF NOT EXISTS baseline_resource (id text PRIMARY KEY, content jsonb NOT NULL)');
  ids = Array.from({ length: patients }, () => randomUUID());
  await pool.query('INSERT INTO baseline_resource (id, content) SELECT * FROM unnest($1::text[], $2::jsonb[])', [
    ids,
    ids.map((id, i) => JSON.stringify({ ...patient(i), id })),
  ]);
  await pool.query('ANALYZE baseline_resource');
  app.get<{ Params: { id: string } }>('/fhir/Patient/:id', async (req, reply) => {
    const { rows } = await pool.query<{ content: string }>('SELECT content::text AS content FROM baseline_resource WHERE id = $1', [req.params.id]);
    if (rows.length === 0) return reply.code(404).send({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'not-found' }] });
    return reply.type(FHIR_JSON).send(rows[0].content);
  });
  app.post('/fhir/Patient', async (req, reply) => {
    const resource = { ...(req.body as Record<string, unknown>), id: randomUUID() };
    const text = JSON.stringify(resource);
    await pool.query('INSERT INTO baseline_resource (id, content) VALUES ($1, $2)', [resource.id, text]);
    return reply.code(201).type(FHIR_JSON).send(text);
  });
  close = () => pool.end();
} else if (kind === 'medplum') {
  const router = new FhirRouter();
  const repo = new MemoryRepository();
  for (let i = 0; i < patients; i++) ids.push((await repo.createResource<Patient>(patient(i) as unknown as Patient)).id);
  const handle = async (method: 'GET' | 'POST', url: string, body: unknown) => {
    const [outcome, resource] = await router.handleRequest(makeSimpleRequest(method, url, body), repo);
    return { status: getStatus(outcome), body: resource ?? outcome };
  };
  app.get<{ Params: { id: string } }>('/fhir/Patient/:id', async (req, reply) => {
    const r = await handle('GET', `Patient/${req.params.id}`, undefined);
    return reply.code(r.status).type(FHIR_JSON).send(JSON.stringify(r.body));
  });
  app.post('/fhir/Patient', async (req, reply) => {
    const r = await handle('POST', 'Patient', req.body);
    return reply.code(r.status).type(FHIR_JSON).send(JSON.stringify(r.body));
  });
} else {
  throw new Error(`BASELINE=${kind}: expected fastify-pg or medplum`);
}

app.get('/ids', async () => ids);
const address = await app.listen({ host: '127.0.0.1', port });
console.log(JSON.stringify({ listening: address }));
const stop = () => {
  void app
    .close()
    .then(close)
    .finally(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
