/**
 * HL7 v2 → FHIR mapping: mapping files under mappings/hl7v2/ loaded and compiled once, and the
 * engine that turns one parsed message into one transaction Bundle.
 */
export { mapMessage, triggerOf, searchEscape, deterministicUuid, type MapContext, type MapResult, type SenderContext } from './engine.js';
export { loadMappings, type MappingRegistry } from './loader.js';
export { HL7_ERROR, MappingError, MappingLoadError, isMappingError, type Hl7ErrorCode, type MappingWarning } from './errors.js';
export { LOCAL_CODE_SYSTEM_PREFIX } from './functions.js';
export { VALUE_FUNCTIONS, hl7DateTime } from './functions.js';
export type { CompiledMappings, MappingFile } from './types.js';
