/**
 * Master patient index: the public surface of the identity folder.
 */
export {
  MIN_BIRTH_YEAR,
  checkIdCard,
  idCardCheckChar,
  parseIdCard,
  upgradeIdCard,
  type IdCardFailure,
  type IdCardFailureReason,
  type IdCardInfo,
  type IdCardOptions,
  type IdCardResult,
} from './id-card.js';
export { demographicsOf, fuzzyPinyin, hanToPinyin, type Demographics, type IdCardConflict } from './demographics.js';
export { compareDemographics, jaroWinkler, bigramDice, DEFAULT_THRESHOLDS, type MatchGrade, type MatchResult, type Thresholds } from './score.js';
export { personsOf, readMany, scoreCandidates, isRetired } from './linker.js';
export { MPI_FLAG_SYSTEM, MPI_TAG, MPI_TAG_SYSTEM, MPI_TASK_SYSTEM } from './person.js';
export { createIdentityHook } from './hook.js';
export { matchPatients, normaliseIdentifier, personRecords, personsByIdentifier, recordsOfPatient, type PersonRecords, type ScoredPatient } from './query.js';
export { countReferring, mergeRetired, unmerge, type MergeSummary } from './merge.js';
export { blockingKeys, storeKeys, personWrites, readPerson, type WriteFn, type NestedWrite } from './linker.js';
