/**
 * Remote reading (基层检查、县级诊断): ServiceRequest + Task from the township, claimed and
 * completed by the reading centre with its DiagnosticReport.
 *   const reading = new ReadingService({ db, fhir });
 *   fhirPlugin extensions: [readingRoutes(reading)]
 */
export { ReadingService, READING_CATEGORIES, READING_REQUEST_SYSTEM, type ReadingCategory, type ReadingRequest, type ReadingResult, type ReadingDeps } from './service.js';
export { readingRoutes } from './routes.js';
export { readingMap, type ReadingHl7Deps } from './hl7.js';
export { READING_OPERATIONS } from './definitions.js';
