/**
 * The demo county community (demo/community.json): one county hospital, two township health
 * centres, three village clinics, their staff, a few patients and lab results, so that a new
 * installation has something to query. The server loads it on first start of the embedded
 * store; the file is a transaction Bundle with conditional creates, so loading it twice
 * creates nothing new.
 */
import { readFile } from 'node:fs/promises';
import type { Bundle } from '@medplum/fhirtypes';

/** Resolved from this module, so it works from both src/ and dist/. */
export const DEMO_COMMUNITY_URL = new URL('../../demo/community.json', import.meta.url);

/** Reads and parses the demo transaction Bundle. */
export async function readDemoCommunity(): Promise<Bundle> {
  const bundle = JSON.parse(await readFile(DEMO_COMMUNITY_URL, 'utf8')) as Bundle;
  if (bundle.resourceType !== 'Bundle' || bundle.type !== 'transaction') {
    throw new Error(`${DEMO_COMMUNITY_URL.pathname} is not a transaction Bundle`);
  }
  return bundle;
}

export const DEMO_QUALIFICATIONS_URL = new URL('../../demo/recognition-qualifications.json', import.meta.url);

export interface DemoQualification {
  readonly institution: string;
  readonly category: string;
  readonly status: string;
  readonly effectiveFrom: string;
  readonly reason?: string;
}

/** The demo community's qualification history for mutual recognition. */
export async function readDemoQualifications(): Promise<readonly DemoQualification[]> {
  return (JSON.parse(await readFile(DEMO_QUALIFICATIONS_URL, 'utf8')) as { changes: DemoQualification[] }).changes;
}

/** Passes the demo Bundle to the repository's transaction function and returns its result. */
export async function loadDemoCommunity<T>(runTransaction: (bundle: Bundle) => Promise<T>): Promise<T> {
  return runTransaction(await readDemoCommunity());
}

export { sendDemoTraffic, type TrafficSummary } from './traffic.js';
