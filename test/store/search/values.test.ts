import t, { type Test } from 'tap';
import { GatewayError } from '../../../src/errors.js';
import {
  alternatives,
  parseDateValue,
  parseNumberValue,
  parseQuantityValue,
  parseReferenceValue,
  parseTokenValue,
  unescape,
} from '../../../src/store/search/values.js';

const BASE = 'https://hie.example.cn/fhir';

function expectInvalid(t: Test, fn: () => unknown, name: string): void {
  try {
    fn();
    t.fail('expected an error');
  } catch (e) {
    t.ok(e instanceof GatewayError, 'a GatewayError');
    const g = e as GatewayError;
    t.equal(g.code, 'GW_ERR_INVALID_SEARCH');
    t.equal(g.statusCode, 400);
    t.same(g.outcome.issue[0].expression, [name], 'names the parameter');
  }
}

t.test('dates: precision gives the range, prefixes are split off', async (t) => {
  t.same(parseDateValue('date', '2024'), { prefix: 'eq', value: '2024', lo: '2024-01-01T00:00:00.000Z', hi: '2024-12-31T23:59:59.999Z' });
  t.same(parseDateValue('date', 'ge2024-02').hi, '2024-02-29T23:59:59.999Z', 'leap February');
  t.equal(parseDateValue('date', 'lt2024-03-01T08:30:00+08:00').lo, '2024-03-01T00:30:00.000Z');
  t.equal(parseDateValue('date', 'sa2024-03-01').prefix, 'sa');
  const ap = parseDateValue('date', 'ap2024-03-01', Date.parse('2024-03-11T00:00:00Z'));
  t.equal(ap.lo, '2024-02-29T00:00:00.000Z', 'ap widens by at least a day');
  for (const bad of ['2024-13-45', '2023-02-29', '2024-04-31', '2024-03-01T25:00', 'yesterday', '20240301', 'xx2024', 'ab2024-01']) {
    expectInvalid(t, () => parseDateValue('birthdate', bad), 'birthdate');
  }
});

t.test('numbers and quantities', async (t) => {
  t.same(parseNumberValue('probability', '0.25'), { prefix: 'eq', value: '0.25', lo: '0.245', hi: '0.255' });
  t.same(parseNumberValue('probability', '100').lo, '99.5');
  t.equal(parseNumberValue('probability', 'ap100').lo, String(99.5 - 10));
  t.same(parseQuantityValue('value-quantity', 'le5.4|http://unitsofmeasure.org|mmol/L'), {
    prefix: 'le',
    value: '5.4',
    lo: String(5.4 - 0.05),
    hi: String(5.4 + 0.05),
    system: 'http://unitsofmeasure.org',
    unit: 'mmol/L',
  });
  t.same(parseQuantityValue('value-quantity', '120||mm[Hg]').unit, 'mm[Hg]');
  t.equal(parseQuantityValue('value-quantity', '120||mm[Hg]').system, undefined);
  for (const bad of ['abc', 'zz5', '1..2', '', '5|a', "1' OR '1'='1"]) expectInvalid(t, () => parseQuantityValue('value-quantity', bad), 'value-quantity');
});

t.test('tokens: the four forms and escapes', async (t) => {
  t.same(parseTokenValue('code', '4548-4'), { code: '4548-4' });
  t.same(parseTokenValue('code', 'http://loinc.org|4548-4'), { system: 'http://loinc.org', code: '4548-4' });
  t.same(parseTokenValue('code', '|4548-4'), { system: null, code: '4548-4' });
  t.same(parseTokenValue('code', 'http://loinc.org|'), { system: 'http://loinc.org' });
  t.same(parseTokenValue('code', 'a\\|b'), { code: 'a|b' });
  expectInvalid(t, () => parseTokenValue('code', 'a|b|c'), 'code');
  expectInvalid(t, () => parseTokenValue('code', '|'), 'code');
  t.same(alternatives('a,b\\,c,d'), ['a', 'b\\,c', 'd']);
  t.equal(unescape('b\\,c'), 'b,c');
});

t.test('references: id, Type/id, our absolute URL, other URLs, :Type', async (t) => {
  t.same(parseReferenceValue('subject', 'p1', BASE), { id: 'p1' });
  t.same(parseReferenceValue('subject', 'Patient/p1', BASE), { type: 'Patient', id: 'p1' });
  t.same(parseReferenceValue('subject', `${BASE}/Patient/p1`, BASE), { type: 'Patient', id: 'p1' });
  t.same(parseReferenceValue('subject', `${BASE}/Patient/p1/_history/2`, BASE), { type: 'Patient', id: 'p1' });
  t.same(parseReferenceValue('subject', 'https://other.example/fhir/Patient/p1', BASE), { url: 'https://other.example/fhir/Patient/p1' });
  t.same(parseReferenceValue('subject', 'p1', BASE, 'Patient'), { type: 'Patient', id: 'p1' });
  expectInvalid(t, () => parseReferenceValue('subject', 'Group/g1', BASE, 'Patient'), 'subject');
});
