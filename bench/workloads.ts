/**
 * The HTTP workloads of the gateway: closed loop with autocannon (each connection sends its next
 * request when the last is answered) and open loop at fixed rates (bench/open-loop.ts).
 */
import autocannon, { type Request } from 'autocannon';
import { ID_CARD_SYSTEM, idCardNumber, observation, patient, patientFamily } from './seed.js';
import { summarize, type LatencySummary } from './stats.js';
import { httpSender, runOpenLoop, type HttpRequestSpec } from './open-loop.js';

export interface SeededData {
  readonly patientIds: readonly string[];
  /** Index n of each seeded patient's identifier, same order as patientIds. */
  readonly patientNumbers: readonly number[];
  /** Subject index and code of observations that exist (for searches that match something). */
  readonly observationKeys: readonly { patient: number; code: string }[];
  /** First identifier number not used by the seed (creates continue from here). */
  readonly nextNumber: number;
}

export interface ClosedWorkload {
  readonly name: string;
  readonly description: string;
  readonly connections: number;
  /** Resources each request carries (a transaction Bundle's entries); throughput is multiplied by it. */
  readonly perRequest?: number;
  /** One example request, checked before the run so a broken endpoint is reported clearly. */
  readonly probe: HttpRequestSpec;
  readonly requests: Request[];
}

export interface OpenWorkload {
  readonly name: string;
  readonly description: string;
  readonly rate: number;
  readonly connections: number;
  request(i: number): HttpRequestSpec;
}

export interface HttpResult {
  readonly name: string;
  readonly description: string;
  /** Requests (or resources, for imports) per second. */
  readonly throughput: number;
  readonly latency: LatencySummary;
  readonly requests: number;
  readonly errors: number;
  readonly seconds: number;
  readonly problem?: string;
}

const FHIR_JSON = 'application/fhir+json';

function pick<T>(items: readonly T[]): T {
  return items[Math.floor(Math.random() * items.length)];
}

const enc = encodeURIComponent;

export type RequestFactories = ReturnType<typeof requestFactories>;

/**
 * Request paths and bodies over the seeded data. Create one per gateway and share it between
 * workloads: new Patients take identifier numbers from one counter (a number used twice would be
 * the same resident registered twice).
 */
export function requestFactories(data: SeededData) {
  let next = data.nextNumber;
  const randomPatient = () => {
    const i = Math.floor(Math.random() * data.patientIds.length);
    return { id: data.patientIds[i], n: data.patientNumbers[i] };
  };
  const observationSearch = (include: boolean) => {
    const key = pick(data.observationKeys);
    return (
      `/fhir/Observation?subject=${enc(`Patient/${data.patientIds[key.patient]}`)}&code=${enc(`http://loinc.org|${key.code}`)}` +
      `&date=ge2024-01-01&_sort=-date&_count=50${include ? '&_include=Observation:subject' : ''}`
    );
  };
  return {
    readPath: () => `/fhir/Patient/${randomPatient().id}`,
    identifierSearchPath: () => `/fhir/Patient?identifier=${enc(`${ID_CARD_SYSTEM}|${idCardNumber(randomPatient().n)}`)}`,
    familyBirthdateSearchPath: () => {
      const { n } = randomPatient();
      const p = patient(n) as { birthDate: string };
      return `/fhir/Patient?family=${enc(patientFamily(n))}&birthdate=${p.birthDate}`;
    },
    observationSearch,
    newPatientNumber: () => next++,
    createBody: () => JSON.stringify(patient(next++)),
    /** A transaction Bundle of `size` new Observations of seeded patients. */
    importBundle: (size: number) =>
      JSON.stringify({
        resourceType: 'Bundle',
        type: 'transaction',
        entry: Array.from({ length: size }, (_, i) => ({
          fullUrl: `urn:uuid:00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
          resource: observation(next++, randomPatient().id),
          request: { method: 'POST', url: 'Observation' },
        })),
      }),
  };
}

export interface WorkloadOptions {
  readonly connections: number;
  readonly crudConnections: number;
  readonly importBundleSize: number;
  readonly importConnections: number;
  readonly openReadRate: number;
  readonly openCreateRate: number;
}

export function closedWorkloads(f: RequestFactories, authorization: string, o: WorkloadOptions): ClosedWorkload[] {
  const headers = { accept: FHIR_JSON, authorization };
  const writeHeaders = { ...headers, 'content-type': FHIR_JSON };
  const get = (name: string, description: string, path: () => string): ClosedWorkload => ({
    name,
    description,
    connections: o.connections,
    probe: { method: 'GET', path: path() },
    requests: [{ method: 'GET', headers, setupRequest: (req) => ({ ...req, path: path() }) }],
  });

  /**
   * The CRUD mix of the public k6 benchmark: each connection creates a Patient, reads it, updates
   * it, searches for it by identifier and deletes it, over and over.
   */
  type Ctx = { id?: string; n?: number };
  const crud: ClosedWorkload = {
    name: `CRUD mix ×${o.crudConnections}`,
    description: 'per connection in turn: POST Patient, GET it, PUT it, search it by identifier, DELETE it',
    connections: o.crudConnections,
    probe: { method: 'GET', path: f.readPath() },
    requests: [
      {
        method: 'POST',
        path: '/fhir/Patient',
        headers: writeHeaders,
        setupRequest: (req, ctx) => {
          const n = f.newPatientNumber();
          (ctx as Ctx).n = n;
          return { ...req, body: JSON.stringify(patient(n)) };
        },
        onResponse: (_status, body, ctx) => {
          try {
            (ctx as Ctx).id = (JSON.parse(body) as { id?: string }).id;
          } catch {
            (ctx as Ctx).id = undefined;
          }
        },
      },
      { method: 'GET', headers, setupRequest: (req, ctx) => ({ ...req, path: `/fhir/Patient/${(ctx as Ctx).id}` }) },
      {
        method: 'PUT',
        headers: writeHeaders,
        setupRequest: (req, ctx) => {
          const c = ctx as Ctx;
          return { ...req, path: `/fhir/Patient/${c.id}`, body: JSON.stringify({ ...patient(c.n ?? 0), id: c.id, telecom: [{ system: 'phone', value: '13800000000' }] }) };
        },
      },
      { method: 'GET', headers, setupRequest: (req, ctx) => ({ ...req, path: `/fhir/Patient?identifier=${enc(`${ID_CARD_SYSTEM}|${idCardNumber((ctx as Ctx).n ?? 0)}`)}` }) },
      { method: 'DELETE', headers, setupRequest: (req, ctx) => ({ ...req, path: `/fhir/Patient/${(ctx as Ctx).id}` }) },
    ],
  };

  return [
    crud,
    get('read Patient', 'GET /fhir/Patient/{id}, random seeded id', f.readPath),
    {
      name: 'create Patient',
      description: 'POST /fhir/Patient, a new identifier each time',
      connections: o.connections,
      probe: { method: 'POST', path: '/fhir/Patient', body: f.createBody() },
      requests: [{ method: 'POST', path: '/fhir/Patient', headers: writeHeaders, setupRequest: (req) => ({ ...req, body: f.createBody() }) }],
    },
    get('search Patient identifier', 'GET /fhir/Patient?identifier={system}|{value}', f.identifierSearchPath),
    get('search Patient family+birthdate', 'GET /fhir/Patient?family={family}&birthdate={date}', f.familyBirthdateSearchPath),
    get('search Observation subject+code+date', 'GET /fhir/Observation?subject=…&code=…&date=ge2024-01-01&_sort=-date&_count=50', () => f.observationSearch(false)),
    get('search Observation … &_include', 'the same with &_include=Observation:subject', () => f.observationSearch(true)),
    {
      name: `import Bundles of ${o.importBundleSize}`,
      description: `POST /fhir transaction Bundles of ${o.importBundleSize} new Observations, ${o.importConnections} at a time; figure in resources/s`,
      connections: o.importConnections,
      perRequest: o.importBundleSize,
      probe: { method: 'POST', path: '/fhir', body: f.importBundle(o.importBundleSize) },
      requests: [{ method: 'POST', path: '/fhir', headers: writeHeaders, setupRequest: (req) => ({ ...req, body: f.importBundle(o.importBundleSize) }) }],
    },
  ];
}

export function openWorkloads(f: RequestFactories, o: WorkloadOptions): OpenWorkload[] {
  return [
    {
      name: `read Patient open ${o.openReadRate}/s`,
      description: `GET /fhir/Patient/{id} started at ${o.openReadRate}/s whatever the answers; latency from the due time`,
      rate: o.openReadRate,
      connections: o.connections,
      request: () => ({ method: 'GET', path: f.readPath() }),
    },
    {
      name: `create Patient open ${o.openCreateRate}/s`,
      description: `POST /fhir/Patient started at ${o.openCreateRate}/s whatever the answers; latency from the due time`,
      rate: o.openCreateRate,
      connections: o.connections,
      request: () => ({ method: 'POST', path: '/fhir/Patient', body: f.createBody() }),
    },
  ];
}

/** Sends one request; returns a problem description, or undefined when 2xx. */
export async function probe(baseUrl: string, headers: Record<string, string>, spec: HttpRequestSpec): Promise<string | undefined> {
  const res = await fetch(baseUrl + spec.path, {
    method: spec.method,
    headers: spec.body ? { ...headers, 'content-type': FHIR_JSON } : headers,
    body: spec.body,
  });
  const text = await res.text();
  return res.ok ? undefined : `${spec.method} ${spec.path} answered ${res.status}: ${text.slice(0, 300)}`;
}

/** Closed loop for `durationSeconds`: throughput, latency percentiles of every response, errors. */
export async function runClosed(baseUrl: string, w: ClosedWorkload, durationSeconds: number, headers: Record<string, string>): Promise<HttpResult> {
  const problem = await probe(baseUrl, headers, w.probe).catch((e: unknown) => String(e));
  const latencies: number[] = [];
  const instance = autocannon({ url: baseUrl, connections: w.connections, duration: durationSeconds, timeout: 30, requests: w.requests });
  instance.on('response', (_client: unknown, _status: number, _bytes: number, responseTime: number) => {
    latencies.push(responseTime);
  });
  const result = await instance;
  const per = w.perRequest ?? 1;
  return {
    name: w.name,
    description: w.description,
    throughput: Math.round((result['2xx'] * per) / result.duration),
    latency: summarize(latencies),
    requests: result.requests.total,
    errors: result.errors + result.timeouts + result.non2xx,
    seconds: result.duration,
    ...(problem ? { problem } : {}),
  };
}

export async function runOpen(baseUrl: string, w: OpenWorkload, durationSeconds: number, headers: Record<string, string>): Promise<HttpResult> {
  const sender = httpSender(baseUrl, headers, w.connections);
  try {
    const r = await runOpenLoop({ rate: w.rate, durationSeconds, send: (i) => sender.send(w.request(i)) });
    return {
      name: w.name,
      description: w.description,
      throughput: r.achievedPerSecond,
      latency: summarize(r.latencies),
      requests: r.sent,
      errors: r.errors,
      seconds: r.seconds,
      ...(r.samples.length ? { problem: r.samples[0] } : {}),
    };
  } finally {
    await sender.close();
  }
}
