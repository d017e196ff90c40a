/**
 * Two-way referrals (双向转诊): the workflow of a referral ServiceRequest and its Task, the level
 * rules of the graded-diagnosis catalogue, reserved slots at the upper level.
 */
export { LevelRules, LevelRulesError, LEVEL_RULES_URL, inRange, type ReferralLevel, type LevelRulesFile, type LevelVerdict, type Direction } from './rules.js';
export { createReferralHook, isReferralRequest, isReferralTask, openingTask, directionOf, isGreenChannel, TRANSITIONS, OPEN_STATUSES, type ReferralStatus } from './workflow.js';
export * from './codes.js';
export { referralStats, median, STATS_LIMIT, type ReferralStats, type StatsQuery } from './stats.js';
export { referralRoutes, REFERRAL_STATS_DEFINITION } from './routes.js';
export { referralMap, type ReferralHl7Deps } from './hl7.js';
