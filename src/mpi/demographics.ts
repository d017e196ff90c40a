/**
 * The facts of a Patient that identity matching compares, normalised once: the resident ID card
 * number (15 digits upgraded to 18) cross-checked against the birth date and sex it encodes, the
 * electronic health card number, the name as Chinese characters and as pinyin (so 张三, ZHANG SAN
 * and Zhang San compare equal), birth date, sex, phone numbers and address.
 */
import type { HumanName, Patient } from '@medplum/fhirtypes';
import { pinyin } from 'pinyin-pro';
import { HEALTH_CARD_SYSTEM, ID_CARD_SYSTEM, institutionOfMrnSystem } from '../fhir/systems.js';
import { parseIdCard } from './id-card.js';

/** Why an ID card number cannot be trusted as a deterministic key. */
export type IdCardConflict = 'invalid' | 'birth-date' | 'sex';

export interface Demographics {
  readonly id: string;
  /** The 18-character ID card number, when one is present, valid and agrees with the record. */
  readonly idCard?: string;
  /** The ID card number given, even when it conflicts (normalised to 18 characters when valid). */
  readonly idCardGiven?: string;
  /** Conflicts between the ID card number and the record (or an invalid number): flagged, never trusted. */
  readonly idCardConflicts: readonly IdCardConflict[];
  readonly healthCard?: string;
  /** The name in Chinese characters, without spaces. */
  readonly han?: string;
  /** Full name in toneless pinyin, surname first, letters only (`zhangsan`). */
  readonly pinyin?: string;
  /** The same with dialect-confusable sounds folded together (zh/z, n/l, -ng/-n, h/f). */
  readonly fuzzy?: string;
  /** Surname in toneless pinyin. */
  readonly surname?: string;
  readonly birthDate?: string;
  readonly sex?: 'male' | 'female';
  /** Phone numbers, digits only. */
  readonly phones: readonly string[];
  /** Address text without spaces and punctuation. */
  readonly address?: string;
  /** Member institutions whose local MRNs this record carries. */
  readonly institutions: readonly string[];
}

const HAN = /\p{Script=Han}/u;

/** Toneless pinyin syllables of Chinese characters; a polyphonic first character is read as a surname. */
export function hanToPinyin(han: string, surnameFirst = true): string[] {
  return pinyin(han, { toneType: 'none', type: 'array', surname: surnameFirst ? 'head' : 'off', nonZh: 'removed', v: true }).map((s) => s.toLowerCase());
}

function latin(s: string): string {
  return s
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/ü|yu(?=e)/g, 'v')
    .replace(/[^a-z]/g, '');
}

/**
 * Folds sounds that clerks and dialects confuse, so that homophone and near-homophone surnames
 * (黄/王 in some dialects aside) compare equal: retroflex and flat initials (zh/z, ch/c, sh/s),
 * n/l, front and back nasal finals (-ng/-n), h/f, and ü written as u or v.
 */
export function fuzzyPinyin(p: string): string {
  return p
    .replace(/zh/g, 'z')
    .replace(/ch/g, 'c')
    .replace(/sh/g, 's')
    .replace(/ng/g, 'n')
    .replace(/l/g, 'n')
    .replace(/h/g, 'f')
    .replace(/v/g, 'u');
}

interface NameForms {
  han?: string;
  pinyin?: string;
  surname?: string;
}

function nameForms(name: HumanName): NameForms {
  const family = name.family ?? '';
  const given = (name.given ?? []).join('');
  const whole = family || given ? `${family}${given}` : (name.text ?? '');
  const compact = whole.replace(/[\s·.,，、-]/g, '');
  if (HAN.test(compact)) {
    const han = [...compact].filter((c) => HAN.test(c)).join('');
    const syllables = hanToPinyin(han);
    const famLen = family && HAN.test(family) ? [...family.replace(/\s/g, '')].length : 1;
    return { han, pinyin: syllables.join(''), surname: syllables.slice(0, famLen).join('') };
  }
  if (family || given) {
    const p = latin(family) + latin(given);
    return p ? { pinyin: p, surname: latin(family) || undefined } : {};
  }
  // Text only, e.g. "ZHANG SAN": the first word is the surname (Chinese order).
  const words = (name.text ?? '').split(/[\s,]+/).map(latin).filter(Boolean);
  return words.length ? { pinyin: words.join(''), surname: words[0] } : {};
}

/**
 * The name forms of a Patient: characters from any name that has them, pinyin from the first. Old
 * names and nicknames (what the person is called by, HL7 XPN.15) are not the person's name to match.
 */
function namesOf(patient: Patient): NameForms {
  const names = (patient.name ?? []).filter((n) => n.use !== 'old' && n.use !== 'nickname');
  let out: NameForms = {};
  for (const n of names) {
    const f = nameForms(n);
    if (f.han && !out.han) out = { ...f };
    else if (!out.pinyin && f.pinyin) out = { ...out, pinyin: f.pinyin, surname: f.surname };
  }
  return out;
}

function digits(s: string | undefined): string {
  return (s ?? '').replace(/\D/g, '');
}

/** A mainland mobile or landline as digits, without +86 / 0086. */
function normalisePhone(value: string | undefined): string | undefined {
  let d = digits(value);
  if (d.startsWith('0086')) d = d.slice(4);
  else if (d.startsWith('86') && d.length === 13) d = d.slice(2);
  return d.length >= 7 ? d : undefined;
}

function normaliseAddress(patient: Patient): string | undefined {
  const a = patient.address?.[0];
  if (!a) return undefined;
  const text = a.text ?? [a.state, a.city, a.district, ...(a.line ?? [])].filter(Boolean).join('');
  const out = text.replace(/[\s,，。、.\-#号]/g, '').toLowerCase();
  return out || undefined;
}

/** Extracts and normalises the matching facts of a Patient. */
export function demographicsOf(patient: Patient, today?: Date): Demographics {
  const ids = patient.identifier ?? [];
  const rawCard = ids.find((i) => i.system === ID_CARD_SYSTEM && i.value)?.value;
  const conflicts: IdCardConflict[] = [];
  let idCardGiven: string | undefined;
  let idCard: string | undefined;
  if (rawCard) {
    const parsed = parseIdCard(rawCard, today ? { today } : {});
    if (!parsed.ok) {
      conflicts.push('invalid');
      idCardGiven = rawCard.trim().toUpperCase();
    } else {
      idCardGiven = parsed.value;
      if (patient.birthDate && patient.birthDate !== parsed.birthDate) conflicts.push('birth-date');
      if ((patient.gender === 'male' || patient.gender === 'female') && patient.gender !== parsed.sex) conflicts.push('sex');
      if (conflicts.length === 0) idCard = parsed.value;
    }
  }
  const names = namesOf(patient);
  const institutions = [...new Set(ids.map((i) => institutionOfMrnSystem(i.system)).filter((x): x is string => !!x))];
  const phones = [...new Set((patient.telecom ?? []).filter((t) => t.system === 'phone' || t.system === 'sms' || !t.system).map((t) => normalisePhone(t.value)).filter((x): x is string => !!x))];
  return {
    id: patient.id ?? '',
    idCard,
    idCardGiven,
    idCardConflicts: conflicts,
    healthCard: ids.find((i) => i.system === HEALTH_CARD_SYSTEM && i.value)?.value?.trim(),
    han: names.han,
    pinyin: names.pinyin,
    fuzzy: names.pinyin ? fuzzyPinyin(names.pinyin) : undefined,
    surname: names.surname,
    birthDate: /^\d{4}-\d{2}-\d{2}$/.test(patient.birthDate ?? '') ? patient.birthDate : undefined,
    sex: patient.gender === 'male' || patient.gender === 'female' ? patient.gender : undefined,
    phones,
    address: normaliseAddress(patient),
    institutions,
  };
}
