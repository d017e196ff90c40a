/**
 * Probabilistic comparison of two Patients' demographics, Fellegi–Sunter style: each field adds
 * a weight for agreement (more for rarer, more reliable agreement) or subtracts one for
 * disagreement; a missing field adds nothing. An ID card or health card number shared by both is
 * a deterministic match; two different valid ID card numbers are a deterministic non-match.
 */
import type { Demographics } from './demographics.js';

export type MatchGrade = 'certain' | 'probable' | 'possible' | 'certainly-not';

export interface Thresholds {
  /** At or above: linked automatically. */
  readonly autoLink: number;
  /** At or above (and below autoLink): queued for review by a person. */
  readonly review: number;
}

export const DEFAULT_THRESHOLDS: Thresholds = Object.freeze({ autoLink: 10, review: 6 });

export interface MatchResult {
  /** Sum of the field weights; Infinity for a deterministic match, -Infinity for a deterministic non-match. */
  readonly weight: number;
  /** The weight as a 0..1 score (logistic around the review threshold), for $match. */
  readonly score: number;
  readonly grade: MatchGrade;
  readonly deterministic: boolean;
  /** Per field, what was found: `name:han`, `birth:swap`, … (no personal values). */
  readonly reasons: readonly string[];
}

/** Jaro–Winkler similarity of two strings (0..1). */
export function jaroWinkler(a: string, b: string): number {
  if (a === b) return 1;
  if (!a.length || !b.length) return 0;
  const range = Math.max(0, Math.floor(Math.max(a.length, b.length) / 2) - 1);
  const aMatch = new Array<boolean>(a.length).fill(false);
  const bMatch = new Array<boolean>(b.length).fill(false);
  let matches = 0;
  for (let i = 0; i < a.length; i++) {
    for (let j = Math.max(0, i - range); j < Math.min(b.length, i + range + 1); j++) {
      if (bMatch[j] || a[i] !== b[j]) continue;
      aMatch[i] = bMatch[j] = true;
      matches++;
      break;
    }
  }
  if (!matches) return 0;
  let t = 0;
  let k = 0;
  for (let i = 0; i < a.length; i++) {
    if (!aMatch[i]) continue;
    while (!bMatch[k]) k++;
    if (a[i] !== b[k]) t++;
    k++;
  }
  const jaro = (matches / a.length + matches / b.length + (matches - t / 2) / matches) / 3;
  let prefix = 0;
  while (prefix < 4 && a[prefix] === b[prefix]) prefix++;
  return jaro + prefix * 0.1 * (1 - jaro);
}

/** Dice coefficient over character bigrams (0..1), for addresses. */
export function bigramDice(a: string, b: string): number {
  if (a === b) return 1;
  if (a.length < 2 || b.length < 2) return 0;
  const grams = (s: string) => {
    const m = new Map<string, number>();
    for (let i = 0; i < s.length - 1; i++) m.set(s.slice(i, i + 2), (m.get(s.slice(i, i + 2)) ?? 0) + 1);
    return m;
  };
  const ga = grams(a);
  const gb = grams(b);
  let common = 0;
  for (const [g, n] of ga) common += Math.min(n, gb.get(g) ?? 0);
  return (2 * common) / (a.length - 1 + (b.length - 1));
}

function nameWeight(a: Demographics, b: Demographics, reasons: string[]): number {
  if (a.han && b.han && a.han === b.han) return reasons.push('name:han'), 6;
  if (!a.pinyin || !b.pinyin) return 0;
  if (a.pinyin === b.pinyin) return reasons.push('name:pinyin'), 5;
  if (a.fuzzy === b.fuzzy) return reasons.push('name:homophone'), 4;
  // Both typed in characters: an input method errs by homophones (caught above), not by near sounds,
  // so different sounds are different names (twins 张伟 and 张玮 are homophones; 张伟 and 张文 are not).
  if (a.han && b.han) return reasons.push('name:differ'), -6;
  // The given name first (San Zhang): the surname moved to the end.
  if (a.surname && b.surname && a.surname === b.surname && a.pinyin.slice(a.surname.length) + a.surname === b.pinyin.slice(b.surname.length) + b.surname) {
    return reasons.push('name:order'), 4;
  }
  const jw = jaroWinkler(a.fuzzy as string, b.fuzzy as string);
  if (jw >= 0.93) return reasons.push('name:similar'), 2.5;
  if (jw >= 0.86) return reasons.push('name:near'), 0;
  return reasons.push('name:differ'), -6;
}

function birthWeight(a: Demographics, b: Demographics, reasons: string[]): number {
  if (!a.birthDate || !b.birthDate) return 0;
  if (a.birthDate === b.birthDate) return reasons.push('birth:same'), 5;
  const [ya, ma, da] = a.birthDate.split('-');
  const [yb, mb, db] = b.birthDate.split('-');
  if (ya === yb && ma === db && da === mb) return reasons.push('birth:swap'), 3.5;
  const da8 = ya + ma + da;
  const db8 = yb + mb + db;
  let differing = 0;
  for (let i = 0; i < 8; i++) if (da8[i] !== db8[i]) differing++;
  if (differing === 1) return reasons.push('birth:typo'), 3;
  // Two adjacent digits transposed (1965 ↔ 1956).
  if (differing === 2) {
    const i = [...da8].findIndex((c, k) => c !== db8[k]);
    if (da8[i] === db8[i + 1] && da8[i + 1] === db8[i]) return reasons.push('birth:transposed'), 2.5;
  }
  return reasons.push('birth:differ'), -8;
}

function sexWeight(a: Demographics, b: Demographics, reasons: string[]): number {
  if (!a.sex || !b.sex) return 0;
  return a.sex === b.sex ? (reasons.push('sex:same'), 0.5) : (reasons.push('sex:differ'), -4);
}

function phoneWeight(a: Demographics, b: Demographics, reasons: string[]): number {
  if (!a.phones.length || !b.phones.length) return 0;
  if (a.phones.some((p) => b.phones.includes(p))) return reasons.push('phone:same'), 3;
  return reasons.push('phone:differ'), -0.5;
}

function addressWeight(a: Demographics, b: Demographics, reasons: string[]): number {
  if (!a.address || !b.address) return 0;
  // A short form (the village and house number) inside the full one is the same address.
  const [short, long] = a.address.length <= b.address.length ? [a.address, b.address] : [b.address, a.address];
  if (short.length >= 4 && long.endsWith(short)) return reasons.push('address:same'), 1.5;
  const d = bigramDice(a.address, b.address);
  if (d >= 0.8) return reasons.push('address:same'), 1.5;
  if (d >= 0.5) return reasons.push('address:similar'), 0.5;
  return reasons.push('address:differ'), -0.5;
}

/** Maps a weight to 0..1: 0.5 at the review threshold, about 0.9 at the auto-link threshold. */
function toScore(weight: number, t: Thresholds): number {
  if (weight === Infinity) return 1;
  if (weight === -Infinity) return 0;
  const scale = Math.max(0.5, (t.autoLink - t.review) / Math.log(9));
  return Math.round((1 / (1 + Math.exp(-(weight - t.review) / scale))) * 1000) / 1000;
}

function gradeOf(weight: number, t: Thresholds): MatchGrade {
  if (weight === Infinity) return 'certain';
  if (weight >= t.autoLink) return 'probable';
  if (weight >= t.review) return 'possible';
  return 'certainly-not';
}

/** Compares two records. Thresholds only shape the score and grade, not the weight. */
export function compareDemographics(a: Demographics, b: Demographics, t: Thresholds = DEFAULT_THRESHOLDS): MatchResult {
  const reasons: string[] = [];
  let weight: number;
  if (a.idCard && b.idCard) {
    weight = a.idCard === b.idCard ? Infinity : -Infinity;
    reasons.push(a.idCard === b.idCard ? 'id-card:same' : 'id-card:differ');
  } else if (a.healthCard && b.healthCard && a.healthCard === b.healthCard) {
    weight = Infinity;
    reasons.push('health-card:same');
  } else {
    weight = nameWeight(a, b, reasons) + birthWeight(a, b, reasons) + sexWeight(a, b, reasons) + phoneWeight(a, b, reasons) + addressWeight(a, b, reasons);
  }
  return { weight, score: toScore(weight, t), grade: gradeOf(weight, t), deterministic: !Number.isFinite(weight), reasons };
}
