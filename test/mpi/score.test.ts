import t from 'tap';
import type { Patient } from '@medplum/fhirtypes';
import { compareDemographics, demographicsOf, fuzzyPinyin, jaroWinkler, DEFAULT_THRESHOLDS } from '../../src/mpi/index.js';
import { HEALTH_CARD_SYSTEM, ID_CARD_SYSTEM } from '../../src/fhir/systems.js';

const ID = '330424195603120047'; // valid, 1956-03-12, female
const base: Patient = { resourceType: 'Patient', id: 'a', name: [{ family: '张', given: ['三'] }], gender: 'female', birthDate: '1956-03-12' };

t.test('names: characters, pinyin and order compare equal', async (t) => {
  const han = demographicsOf(base);
  t.equal(han.pinyin, 'zhangsan');
  t.equal(demographicsOf({ ...base, name: [{ text: 'ZHANG SAN' }] }).pinyin, 'zhangsan');
  t.equal(demographicsOf({ ...base, name: [{ family: 'Zhang', given: ['San'] }] }).pinyin, 'zhangsan');
  t.equal(demographicsOf({ ...base, name: [{ text: '张 三' }] }).han, '张三');
  // Polyphonic surnames are read as surnames: 单 shan, 曾 zeng.
  t.equal(demographicsOf({ ...base, name: [{ family: '单', given: ['雄信'] }] }).pinyin, 'shanxiongxin');
  t.equal(demographicsOf({ ...base, name: [{ family: '曾', given: ['国藩'] }] }).surname, 'zeng');
  const r = compareDemographics(han, demographicsOf({ ...base, id: 'b', name: [{ text: 'ZHANG SAN' }] }));
  t.ok(r.reasons.includes('name:pinyin'));
  t.ok(compareDemographics(han, demographicsOf({ ...base, id: 'b', name: [{ family: '章', given: ['三'] }] })).reasons.includes('name:pinyin'), 'homophone surname 张/章');
  t.equal(fuzzyPinyin('zhangliang'), fuzzyPinyin('zanniang'), 'zh/z, l/n and -ng fold together');
  t.ok(compareDemographics(han, demographicsOf({ ...base, id: 'b', name: [{ family: '张', given: ['山'] }] })).reasons.includes('name:homophone'), '三 san and 山 shan: flat and retroflex folded');
  t.ok(compareDemographics(han, demographicsOf({ ...base, id: 'b', name: [{ family: '张', given: ['文'] }] })).reasons.includes('name:differ'), 'different characters of different sound');
  t.ok(jaroWinkler('zhangsan', 'zhangsna') > 0.9);
  // What the person is called by (HL7 XPN.15, a nickname) is not matched as the name.
  const called = demographicsOf({ ...base, name: [{ use: 'nickname', given: ['小三'] }, { family: 'Zhang', given: ['San'] }] });
  t.equal(called.han, undefined, 'the nickname gives no characters');
  t.equal(called.pinyin, 'zhangsan', 'the official name is the one compared');
});

t.test('birth dates: day/month swap and one-digit typos score partially', async (t) => {
  const a = demographicsOf(base);
  const cmp = (birthDate: string) => compareDemographics(a, demographicsOf({ ...base, id: 'b', birthDate })).reasons.find((r) => r.startsWith('birth:'));
  t.equal(cmp('1956-03-12'), 'birth:same');
  t.equal(cmp('1956-12-03'), 'birth:swap');
  t.equal(cmp('1958-03-12'), 'birth:typo');
  t.equal(cmp('1965-03-12'), 'birth:transposed');
  t.equal(cmp('1970-07-01'), 'birth:differ');
});

t.test('ID card numbers are deterministic both ways; 15 digits are upgraded', async (t) => {
  const a = demographicsOf({ ...base, identifier: [{ system: ID_CARD_SYSTEM, value: ID }] });
  t.equal(a.idCard, ID);
  const old = demographicsOf({ ...base, id: 'b', name: [{ text: 'Someone Else' }], identifier: [{ system: ID_CARD_SYSTEM, value: '330424560312004' }] });
  t.equal(old.idCard, ID, 'the 15-digit form upgrades to the same number');
  const r = compareDemographics(a, old);
  t.equal(r.grade, 'certain');
  t.equal(r.score, 1);
  const other = demographicsOf({ ...base, id: 'c', identifier: [{ system: ID_CARD_SYSTEM, value: '110101199003071233' }], birthDate: '1990-03-07', gender: 'male' });
  t.equal(other.idCardConflicts.length, 0);
  t.equal(compareDemographics(a, { ...other, birthDate: a.birthDate, han: a.han, pinyin: a.pinyin, fuzzy: a.fuzzy }).grade, 'certainly-not', 'two different valid numbers are two people');
  const hc = compareDemographics(demographicsOf({ ...base, identifier: [{ system: HEALTH_CARD_SYSTEM, value: 'H1' }] }), demographicsOf({ ...base, id: 'x', identifier: [{ system: HEALTH_CARD_SYSTEM, value: 'H1' }] }));
  t.equal(hc.grade, 'certain');
});

t.test('an ID card number that conflicts with the record is flagged and not trusted', async (t) => {
  const wrongBirth = demographicsOf({ ...base, birthDate: '1956-03-13', identifier: [{ system: ID_CARD_SYSTEM, value: ID }] });
  t.same(wrongBirth.idCardConflicts, ['birth-date']);
  t.equal(wrongBirth.idCard, undefined);
  t.equal(wrongBirth.idCardGiven, ID);
  const wrongSex = demographicsOf({ ...base, gender: 'male', identifier: [{ system: ID_CARD_SYSTEM, value: ID }] });
  t.same(wrongSex.idCardConflicts, ['sex']);
  const invalid = demographicsOf({ ...base, identifier: [{ system: ID_CARD_SYSTEM, value: '330424195603120048' }] });
  t.same(invalid.idCardConflicts, ['invalid']);
});

t.test('thresholds shape grade and score', async (t) => {
  const a = demographicsOf({ ...base, telecom: [{ system: 'phone', value: '+86 138 0000 1111' }] });
  const b = demographicsOf({ ...base, id: 'b', telecom: [{ system: 'phone', value: '13800001111' }] });
  const r = compareDemographics(a, b);
  t.equal(r.weight, 6 + 5 + 0.5 + 3);
  t.equal(r.grade, 'probable');
  t.ok(r.score > 0.9 && r.score < 1);
  t.equal(compareDemographics(a, b, { autoLink: 20, review: 10 }).grade, 'possible');
  t.equal(DEFAULT_THRESHOLDS.autoLink, 10);
  const far = compareDemographics(a, demographicsOf({ ...base, id: 'c', name: [{ family: '李', given: ['四'] }], birthDate: '1980-01-01' }));
  t.equal(far.grade, 'certainly-not');
  t.ok(far.score < 0.1);
});
