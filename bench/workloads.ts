/**
 * The autocannon workloads: FHIR read, two searches and create, each time-bounded.
 */
import autocannon, { type Request, type Result } from 'autocannon';
import { ID_CARD_SYSTEM, idCardNumber, patient } from './seed.js';

export interface SeededData {
  readonly patientIds: readonly string[];
  /** Index n of each seeded patient's identifier, same order as patientIds. */
  readonly patientNumbers: readonly number[];
  /** Subject index and code of each seeded observation (for searches that match something). */
  readonly observationKeys: readonly { patient: number; code: string }[];
  /** First identifier number not used by the seed (creates continue from here). */
  readonly nextNumber: number;
}

export interface Workload {
  readonly name: string;
  readonly description: string;
  /** One example path, checked before the run so a broken endpoint is reported clearly. */
  readonly probe: Request;
  readonly requests: Request[];
}

const FHIR_JSON = 'application/fhir+json';

function pick<T>(items: readonly T[]): T {
  return items[Math.floor(Math.random() * items.length)];
}

function enc(s: string): string {
  return encodeURIComponent(s);
}

/** authorization: the `Bearer …` header every request carries, as an integrating HIS would. */
export function workloads(data: SeededData, authorization: string): Workload[] {
  const HEADERS = { accept: FHIR_JSON, authorization };
  const readPath = () => `/fhir/Patient/${pick(data.patientIds)}`;
  const observationSearchPath = () => {
    const key = pick(data.observationKeys);
    return `/fhir/Observation?subject=${enc(`Patient/${data.patientIds[key.patient]}`)}&code=${enc(`http://loinc.org|${key.code}`)}`;
  };
  const identifierSearchPath = () => `/fhir/Patient?identifier=${enc(`${ID_CARD_SYSTEM}|${idCardNumber(pick(data.patientNumbers))}`)}`;
  let next = data.nextNumber;
  const createBody = () => JSON.stringify(patient(next++));

  const get = (path: () => string): { probe: Request; requests: Request[] } => ({
    probe: { method: 'GET', path: path(), headers: HEADERS },
    requests: [
      {
        method: 'GET',
        headers: HEADERS,
        setupRequest: (req) => ({ ...req, path: path() }),
      },
    ],
  });

  return [
    { name: 'read Patient', description: 'GET /fhir/Patient/{id}, random seeded id', ...get(readPath) },
    { name: 'search Observation subject+code', description: 'GET /fhir/Observation?subject=Patient/{id}&code=http://loinc.org|{code}', ...get(observationSearchPath) },
    { name: 'search Patient identifier', description: 'GET /fhir/Patient?identifier={system}|{value}', ...get(identifierSearchPath) },
    {
      name: 'create Patient',
      description: 'POST /fhir/Patient, new identifier each time',
      probe: { method: 'POST', path: '/fhir/Patient', headers: { ...HEADERS, 'content-type': FHIR_JSON }, body: createBody() },
      requests: [
        {
          method: 'POST',
          path: '/fhir/Patient',
          headers: { ...HEADERS, 'content-type': FHIR_JSON },
          setupRequest: (req) => ({ ...req, body: createBody() }),
        },
      ],
    },
  ];
}

/** Sends the workload's probe request once; returns a problem description, or undefined when 2xx. */
export async function probe(baseUrl: string, w: Workload): Promise<string | undefined> {
  const res = await fetch(baseUrl + (w.probe.path ?? '/'), {
    method: w.probe.method ?? 'GET',
    headers: w.probe.headers,
    body: w.probe.body as string | undefined,
  });
  const text = await res.text();
  return res.ok ? undefined : `${w.probe.method} ${w.probe.path} answered ${res.status}: ${text.slice(0, 300)}`;
}

export interface WorkloadResult {
  readonly name: string;
  readonly description: string;
  readonly requestsPerSecond: number;
  readonly latencyP50Ms: number;
  readonly latencyP99Ms: number;
  readonly requests: number;
  readonly errors: number;
  readonly timeouts: number;
  readonly non2xx: number;
  readonly durationSeconds: number;
  readonly probeProblem?: string;
}

export async function run(baseUrl: string, w: Workload, options: { durationSeconds: number; connections: number }): Promise<WorkloadResult> {
  const probeProblem = await probe(baseUrl, w).catch((e: unknown) => String(e));
  const result: Result = await autocannon({
    url: baseUrl,
    connections: options.connections,
    duration: options.durationSeconds,
    timeout: 10,
    requests: w.requests,
  });
  return {
    name: w.name,
    description: w.description,
    requestsPerSecond: Math.round(result.requests.average),
    latencyP50Ms: result.latency.p50,
    latencyP99Ms: result.latency.p99,
    requests: result.requests.total,
    errors: result.errors,
    timeouts: result.timeouts,
    non2xx: result.non2xx,
    durationSeconds: result.duration,
    ...(probeProblem ? { probeProblem } : {}),
  };
}
