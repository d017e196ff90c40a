/**
 * Identity-matching workload: the synthetic population of test/helpers/mpi-population.ts (each
 * resident registered at the county hospital, a township centre and a village clinic, with
 * realistic registration errors) is posted to the running gateway as transaction Bundles; then
 * every Person (golden record) is read back and the links are scored against the truth.
 * Prints pairwise precision and recall at the gateway's configured thresholds, and the rate at
 * which records were registered and linked.
 */
import type { Bundle, Person } from '@medplum/fhirtypes';
import { linkageQuality, population } from '../test/helpers/mpi-population.js';

export interface MpiResult {
  readonly name: string;
  readonly people: number;
  readonly records: number;
  readonly precision: number;
  readonly recall: number;
  readonly linkedPairs: number;
  readonly truePairs: number;
  readonly recordsPerSecond: number;
}

async function fhir<T>(url: string, authorization: string, init: RequestInit = {}): Promise<T> {
  const res = await fetch(url, { ...init, headers: { authorization, 'content-type': 'application/fhir+json', ...(init.headers ?? {}) } });
  if (!res.ok) throw new Error(`${init.method ?? 'GET'} ${url.replace(/\?.*/, '')} answered ${res.status}: ${(await res.text()).slice(0, 300)}`);
  return (await res.json()) as T;
}

export async function runMpi(baseUrl: string, authorization: string, people: number, batch = 50): Promise<MpiResult> {
  const regs = population(people, 20261123 + people);
  const started = performance.now();
  const ids: string[] = [];
  for (let i = 0; i < regs.length; i += batch) {
    const bundle: Bundle = {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: regs.slice(i, i + batch).map((r) => ({ resource: r.patient, request: { method: 'POST', url: 'Patient' } })),
    };
    const answer = await fhir<Bundle>(`${baseUrl}/fhir`, authorization, { method: 'POST', body: JSON.stringify(bundle) });
    for (const e of answer.entry ?? []) ids.push(/Patient\/([^/]+)/.exec(e.response?.location ?? '')?.[1] ?? '');
  }
  const seconds = (performance.now() - started) / 1000;
  const personOf = new Map<string, string>();
  let next: string | undefined = `${baseUrl}/fhir/Person?_count=1000`;
  while (next) {
    const page: Bundle<Person> = await fhir<Bundle<Person>>(next, authorization);
    for (const e of page.entry ?? []) for (const l of e.resource?.link ?? []) personOf.set((l.target.reference ?? '').replace('Patient/', ''), e.resource?.id ?? '');
    next = page.link?.find((l) => l.relation === 'next')?.url;
  }
  const q = linkageQuality(regs, (i) => personOf.get(ids[i]));
  return {
    name: `MPI link ${people} people x 3 institutions`,
    people,
    records: regs.length,
    precision: Number(q.precision.toFixed(4)),
    recall: Number(q.recall.toFixed(4)),
    linkedPairs: q.linkedPairs,
    truePairs: q.truePairs,
    recordsPerSecond: Math.round(regs.length / seconds),
  };
}

export function mpiTable(results: readonly MpiResult[]): string {
  return [
    '| workload | records | precision | recall | linked pairs | true pairs | records/s |',
    '|:--|--:|--:|--:|--:|--:|--:|',
    ...results.map((r) => `| ${r.name} | ${r.records} | ${r.precision.toFixed(4)} | ${r.recall.toFixed(4)} | ${r.linkedPairs} | ${r.truePairs} | ${r.recordsPerSecond} |`),
  ].join('\n');
}
