/**
 * Prometheus metrics of the terminology module: codes that arrived without a mapping, by system
 * and code. Codes are not personal data; the label set is bounded by the engine's cap on distinct
 * codes (MAX_UNMAPPED_KEYS), beyond which codes are counted as `_other`.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Terminology } from './engine.js';

export const UNMAPPED_METRIC = 'gateway_terminology_unmapped_codes_total';
export const ENTRIES_METRIC = 'gateway_terminology_mapped_codes';

/** Registers the terminology metrics of `terminology` on `registry` (call once per registry). */
export function registerTerminologyMetrics(registry: Registry, terminology: Terminology): void {
  const unmapped = new Counter({
    name: UNMAPPED_METRIC,
    help: 'Local codes the feeds (HL7 v2, HIS extracts) stored with no mapping to a standard code system, by system and code.',
    labelNames: ['system', 'code'] as const,
    registers: [registry],
  });
  // Counts from before registration are carried over, so a late registration loses nothing.
  for (const { system, code, count } of terminology.unmappedCodes()) unmapped.inc({ system, code }, count);
  terminology.onUnmapped((system, code) => unmapped.inc({ system, code }));
  const size = terminology.size;
  new Gauge({
    name: ENTRIES_METRIC,
    help: 'Local (system, code) pairs with at least one mapping in the loaded ConceptMaps.',
    registers: [registry],
    collect() {
      this.set(size);
    },
  });
}
