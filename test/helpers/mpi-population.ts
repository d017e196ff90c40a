/**
 * A synthetic population for identity-matching tests and the MPI benchmark: N residents of one
 * county, each registered at the county hospital, a township centre and a village clinic under
 * local MRNs, with the errors registration desks really make: ID card numbers missing, mistyped or
 * in the old 15-digit form, names typed as homophone characters or as pinyin (ZHANG SAN, Zhang San),
 * day and month swapped, a digit of the birth date mistyped, a new phone number, a short address.
 * Households share surname, phone and address; some are twins; common names recur. Deterministic
 * for a given seed.
 */
import type { Patient } from '@medplum/fhirtypes';
import { HEALTH_CARD_SYSTEM, ID_CARD_SYSTEM, mrnSystem } from '../../src/fhir/systems.js';
import { idCardCheckChar, personsOf } from '../../src/mpi/index.js';
import { SYSTEM_CONTEXT, type Repository } from '../../src/fhir/index.js';

export const INSTITUTIONS = { county: '1233042447101234XX', township: '1233042447102341XF', village: '52330424681045633Y' } as const;
type Site = keyof typeof INSTITUTIONS;

export interface Registration {
  /** Index of the resident this record belongs to (the truth). */
  readonly person: number;
  readonly site: Site;
  readonly patient: Patient;
}

/** mulberry32: a small seeded PRNG. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Surnames with their usual romanisation; homophone pairs (张/章, 王/汪, 徐/许, 杨/阳) included on purpose.
const SURNAMES: readonly [string, string][] = [
  ['王', 'Wang'], ['李', 'Li'], ['张', 'Zhang'], ['刘', 'Liu'], ['陈', 'Chen'], ['杨', 'Yang'], ['黄', 'Huang'], ['赵', 'Zhao'],
  ['吴', 'Wu'], ['周', 'Zhou'], ['徐', 'Xu'], ['孙', 'Sun'], ['马', 'Ma'], ['朱', 'Zhu'], ['胡', 'Hu'], ['郭', 'Guo'],
  ['何', 'He'], ['林', 'Lin'], ['罗', 'Luo'], ['高', 'Gao'], ['章', 'Zhang'], ['汪', 'Wang'], ['许', 'Xu'], ['沈', 'Shen'],
  ['单', 'Shan'], ['曾', 'Zeng'],
];
/** Homophone surname a clerk may type instead. */
const SURNAME_HOMOPHONE: Record<string, string> = { 张: '章', 章: '张', 王: '汪', 汪: '王', 徐: '许', 许: '徐', 杨: '阳', 林: '琳', 周: '舟' };
// Given-name characters with pinyin, and a homophone a clerk's IME may pick instead.
const GIVEN: readonly [string, string, string][] = [
  ['伟', 'wei', '玮'], ['芳', 'fang', '方'], ['娜', 'na', '那'], ['敏', 'min', '民'], ['静', 'jing', '晶'], ['丽', 'li', '莉'],
  ['强', 'qiang', '蔷'], ['磊', 'lei', '蕾'], ['军', 'jun', '君'], ['洋', 'yang', '阳'], ['勇', 'yong', '永'], ['艳', 'yan', '燕'],
  ['杰', 'jie', '洁'], ['涛', 'tao', '涛'], ['明', 'ming', '鸣'], ['超', 'chao', '潮'], ['秀', 'xiu', '绣'], ['霞', 'xia', '侠'],
  ['平', 'ping', '萍'], ['刚', 'gang', '钢'], ['桂', 'gui', '贵'], ['英', 'ying', '瑛'], ['华', 'hua', '桦'], ['建', 'jian', '健'],
  ['国', 'guo', '帼'], ['文', 'wen', '雯'], ['红', 'hong', '虹'], ['梅', 'mei', '玫'], ['兰', 'lan', '岚'], ['志', 'zhi', '智'],
  ['海', 'hai', '海'], ['春', 'chun', '椿'], ['玉', 'yu', '钰'], ['金', 'jin', '锦'], ['龙', 'long', '隆'], ['凤', 'feng', '峰'],
  ['晓', 'xiao', '筱'], ['东', 'dong', '冬'], ['斌', 'bin', '彬'], ['鹏', 'peng', '朋'],
];
const TOWNS = ['城关镇', '石门乡', '清溪镇', '白沙乡'];
const VILLAGES = ['东河村', '西山村', '南塘村', '北岭村', '上洋村', '下湾村', '桥头村', '新民村'];

function pick<T>(r: () => number, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)];
}

interface Resident {
  surname: [string, string];
  given: [string, string, string][];
  sex: 'male' | 'female';
  birthDate: string;
  idCard: string;
  healthCard?: string;
  phone?: string;
  town: string;
  village: string;
  house: number;
}

function pad(n: number, w: number): string {
  return String(n).padStart(w, '0');
}

function makeIdCard(r: () => number, birth: string, sex: 'male' | 'female', used: Set<string>): string {
  for (;;) {
    let seq = Math.floor(r() * 500) * 2 + (sex === 'male' ? 1 : 0);
    if (seq === 0) seq = 2;
    const first17 = `330424${birth.replace(/-/g, '')}${pad(seq, 3)}`;
    const id = first17 + idCardCheckChar(first17);
    if (!used.has(id)) {
      used.add(id);
      return id;
    }
  }
}

function randomBirth(r: () => number, yearFrom = 1935, yearTo = 2020): string {
  const y = yearFrom + Math.floor(r() * (yearTo - yearFrom + 1));
  const m = 1 + Math.floor(r() * 12);
  const d = 1 + Math.floor(r() * 28);
  return `${y}-${pad(m, 2)}-${pad(d, 2)}`;
}

function residents(r: () => number, n: number): Resident[] {
  const out: Resident[] = [];
  const ids = new Set<string>();
  const common = Array.from({ length: 12 }, () => [pick(r, GIVEN)]);
  while (out.length < n) {
    // A household: one to three residents sharing surname (children), phone and address.
    const size = Math.min(n - out.length, r() < 0.6 ? 1 : r() < 0.7 ? 2 : 3);
    const surname = pick(r, SURNAMES);
    const town = pick(r, TOWNS);
    const village = pick(r, VILLAGES);
    const house = 1 + Math.floor(r() * 120);
    const phone = r() < 0.85 ? `13${pad(Math.floor(r() * 1e9), 9)}` : undefined;
    const twins = size >= 2 && r() < 0.25;
    let twinBirth: string | undefined;
    for (let k = 0; k < size; k++) {
      const sex: 'male' | 'female' = r() < 0.5 ? 'male' : 'female';
      const given: [string, string, string][] = r() < 0.3 ? (pick(r, common) as [string, string, string][]) : r() < 0.5 ? [pick(r, GIVEN)] : [pick(r, GIVEN), pick(r, GIVEN)];
      let birthDate = randomBirth(r);
      if (twins && k < 2) birthDate = twinBirth ??= birthDate;
      out.push({
        surname,
        given,
        sex,
        birthDate,
        idCard: makeIdCard(r, birthDate, sex, ids),
        healthCard: r() < 0.3 ? `3304${pad(Math.floor(r() * 1e12), 12)}` : undefined,
        phone: phone && (k === 0 || r() < 0.7) ? phone : undefined,
        town,
        village,
        house,
      });
    }
  }
  return out;
}

interface SiteHabits {
  idCard: number;
  healthCard: number;
  pinyinName: number;
  homophoneGiven: number;
  homophoneSurname: number;
  shortAddress: boolean;
}

const HABITS: Record<Site, SiteHabits> = {
  county: { idCard: 0.75, healthCard: 0.5, pinyinName: 0.1, homophoneGiven: 0.02, homophoneSurname: 0.01, shortAddress: false },
  township: { idCard: 0.55, healthCard: 0.3, pinyinName: 0.03, homophoneGiven: 0.05, homophoneSurname: 0.02, shortAddress: false },
  village: { idCard: 0.35, healthCard: 0.1, pinyinName: 0, homophoneGiven: 0.08, homophoneSurname: 0.04, shortAddress: true },
};

function typoDigit(r: () => number, s: string, positions: readonly number[]): string {
  const i = pick(r, positions);
  const old = Number(s[i]);
  const next = (old + 1 + Math.floor(r() * 9)) % 10;
  return s.slice(0, i) + String(next) + s.slice(i + 1);
}

function register(r: () => number, p: Resident, person: number, site: Site): Registration {
  const h = HABITS[site];
  const identifier: NonNullable<Patient['identifier']> = [{ system: mrnSystem(INSTITUTIONS[site]), value: pad(Math.floor(r() * 1e9), 10) }];
  if (r() < h.idCard) {
    let id = p.idCard;
    if (Number(p.birthDate.slice(0, 4)) < 1980 && r() < 0.1) id = id.slice(0, 6) + id.slice(8, 17); // old 15-digit form
    else if (r() < 0.03) id = typoDigit(r, id, [12, 13, 14, 15]); // mistyped: fails the check character
    identifier.push({ system: ID_CARD_SYSTEM, value: id });
  }
  if (p.healthCard && r() < h.healthCard) identifier.push({ system: HEALTH_CARD_SYSTEM, value: p.healthCard });

  let surname = p.surname[0];
  if (r() < h.homophoneSurname && SURNAME_HOMOPHONE[surname]) surname = SURNAME_HOMOPHONE[surname];
  const given = p.given.map((g) => (r() < h.homophoneGiven ? g[2] : g[0])).join('');
  let name: NonNullable<Patient['name']>[number];
  if (r() < h.pinyinName) {
    const py = p.given.map((g) => g[1]).join('');
    const givenPy = py.charAt(0).toUpperCase() + py.slice(1);
    name = r() < 0.5 ? { text: `${p.surname[1].toUpperCase()} ${py.toUpperCase()}` } : { family: p.surname[1], given: [givenPy] };
  } else {
    name = { family: surname, given: [given], text: surname + given };
  }

  let birthDate: string | undefined = p.birthDate;
  const roll = r();
  const [y, m, d] = p.birthDate.split('-');
  if (roll < 0.03 && Number(d) <= 12 && m !== d) birthDate = `${y}-${d}-${m}`;
  else if (roll < 0.05) {
    const typo = typoDigit(r, `${y}${m}${d}`, [2, 3, 7]);
    const candidate = `${typo.slice(0, 4)}-${typo.slice(4, 6)}-${typo.slice(6, 8)}`;
    birthDate = Number(typo.slice(6, 8)) >= 1 && Number(typo.slice(6, 8)) <= 28 ? candidate : p.birthDate;
  } else if (roll < 0.07) birthDate = undefined;

  const telecom = p.phone && r() < 0.75 ? [{ system: 'phone' as const, value: r() < 0.06 ? `13${pad(Math.floor(r() * 1e9), 9)}` : p.phone }] : undefined;
  const address = r() < 0.9 ? [{ text: h.shortAddress ? `${p.village}${p.house}号` : `浙江省青山县${p.town}${p.village}${p.house}号`, district: '青山县' }] : undefined;
  const patient: Patient = {
    resourceType: 'Patient',
    identifier,
    name: [name],
    ...(r() < 0.99 ? { gender: p.sex } : {}),
    ...(birthDate ? { birthDate } : {}),
    ...(telecom ? { telecom } : {}),
    ...(address ? { address } : {}),
  };
  return { person, site, patient };
}

/** N residents, each registered at the three sites, in a shuffled order of arrival. */
export function population(n: number, seed = 20261123): Registration[] {
  const r = prng(seed);
  const people = residents(r, n);
  const regs: Registration[] = [];
  people.forEach((p, i) => {
    for (const site of ['county', 'township', 'village'] as const) regs.push(register(r, p, i, site));
  });
  for (let i = regs.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [regs[i], regs[j]] = [regs[j], regs[i]];
  }
  return regs;
}

export interface LinkageQuality {
  readonly truePairs: number;
  readonly linkedPairs: number;
  readonly correctPairs: number;
  readonly precision: number;
  readonly recall: number;
}

/** Pairwise precision and recall of a clustering (record index → cluster id) against the truth. */
export function linkageQuality(regs: readonly Registration[], clusterOf: (index: number) => string | undefined): LinkageQuality {
  let truePairs = 0;
  let linkedPairs = 0;
  let correctPairs = 0;
  for (let i = 0; i < regs.length; i++) {
    for (let j = i + 1; j < regs.length; j++) {
      const same = regs[i].person === regs[j].person;
      const ci = clusterOf(i);
      const linked = ci !== undefined && ci === clusterOf(j);
      if (same) truePairs++;
      if (linked) linkedPairs++;
      if (same && linked) correctPairs++;
    }
  }
  return { truePairs, linkedPairs, correctPairs, precision: linkedPairs ? correctPairs / linkedPairs : 1, recall: truePairs ? correctPairs / truePairs : 1 };
}

/** Stores the registrations through the repository in transactions of `batch`; returns each record's person. */
export async function registerPopulation(
  repo: Repository,
  regs: readonly Registration[],
  batch = 50,
): Promise<{ patientIds: string[]; clusterOf: (index: number) => string | undefined }> {
  const patientIds: string[] = [];
  for (let i = 0; i < regs.length; i += batch) {
    const results = await repo.write(
      regs.slice(i, i + batch).map((r) => ({ method: 'POST' as const, type: 'Patient', resource: r.patient })),
      SYSTEM_CONTEXT,
    );
    for (const res of results) patientIds.push(res.id as string);
  }
  const persons = await personsOf(repo.db, patientIds);
  return { patientIds, clusterOf: (index) => persons.get(patientIds[index]) };
}
