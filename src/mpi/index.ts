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
