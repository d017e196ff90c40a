/**
 * HIS database extracts (CSV or NDJSON) → FHIR, streamed in bounded memory, with a job per load.
 */
export { loadExtractMappings, checkRow, missingColumns, ExtractMappingError, DEFAULT_EXTRACT_MAPPINGS_DIR, type ExtractMapping, type Column, type Row, type FieldError } from './mappings.js';
export { rowEntries, extractSystem, localSystem, ICD10_SYSTEM } from './resources.js';
export { runExtract, BATCH_ROWS, BATCHES_IN_FLIGHT, PATIENT_CACHE, EXTRACT_CHARSETS, type ExtractFormat, type ExtractCharset, type ExtractDeps } from './run.js';
export { createJob, getJob, listJobs, type Job } from './jobs.js';
export { extractRoutes, type ExtractRoutesOptions } from './routes.js';
