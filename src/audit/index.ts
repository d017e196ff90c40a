/**
 * The audit trail: one AuditEvent per access, shaped after IHE Basic Audit Log Patterns (BALP),
 * appended to a hash chain in the same database transaction as the access it records.
 *
 * Storage: audit_event, partitioned by month and append-only, apart from the clinical tables;
 * audit_chain, the head of each of the N chains. See chain.ts (appending), verify.ts
 * (verification), partitions.ts (partitions and retention), routes.ts (HTTP for auditors).
 */
import type { Config } from '../config.js';
import type { Db, Queryable } from '../store/index.js';
import type { RequestContext } from '../fhir/context.js';
import { appendAuditEvents, configureAuditChains, resolveHashAlgorithm, type HashAlgorithm } from './chain.js';
import { maintainAuditPartitions, type PartitionReport } from './partitions.js';
import type { AccessRecord } from './event.js';

export { buildAuditEvent, type AccessRecord, type Interaction } from './event.js';
export { appendAuditEvents, configureAuditChains, resolveHashAlgorithm, sm3Available, type HashAlgorithm, type AppendResult } from './chain.js';
export { verifyAuditChains, type VerifyResult, type VerifyOptions, type BrokenLink, type ChainReport } from './verify.js';
export { maintainAuditPartitions, listAuditPartitions, type PartitionOptions, type PartitionReport } from './partitions.js';
export { auditRoutes, verifyParameters, type AuditRoutesOptions } from './routes.js';
export { assertAuditorScope, type AuditPermission } from './access.js';
export { patientAccessLog, type PatientLogPage } from './patient-log.js';

/**
 * Appends the AuditEvents of records (one per access) in q's transaction: all of them to one
 * chain, with one head lock and one insert. Called by the write path and the repository inside
 * their transaction; given the Db itself, it runs in a transaction of its own.
 */
export async function recordAccess(q: Queryable, ctx: RequestContext, records: readonly AccessRecord[]): Promise<void> {
  await appendAuditEvents(q, ctx, records);
}

export type AuditConfig = Pick<Config, 'auditHash' | 'auditChains' | 'auditRetentionMonths'>;

export interface AuditSetup {
  readonly alg: HashAlgorithm;
  readonly chains: number;
  readonly partitions: PartitionReport;
}

/**
 * Run once at start, after migrations and before serving: sets the chains and hash algorithm,
 * creates the partitions ahead and applies retention. Then call `maintainAuditPartitions`
 * periodically (e.g. daily) so that partitions stay ahead and old months are dropped.
 */
export async function prepareAudit(db: Db, config: AuditConfig, now?: Date): Promise<AuditSetup> {
  const alg = resolveHashAlgorithm(config.auditHash);
  await configureAuditChains(db, { chains: config.auditChains, alg });
  const partitions = await maintainAuditPartitions(db, { retentionMonths: config.auditRetentionMonths, ...(now ? { now } : {}) });
  return { alg, chains: config.auditChains, partitions };
}
