import t from 'tap';
import { checkIdCard, idCardCheckChar, parseIdCard, upgradeIdCard, type IdCardResult } from '../../src/mpi/index.js';

const TODAY = new Date('2025-06-01T00:00:00+08:00');

function failure(r: IdCardResult): { reason: string; message: string; expected?: string; position?: number } {
  if (r.ok) throw new Error('expected a failure');
  return r;
}

t.test('published examples give their check characters', async (t) => {
  // The test pattern used across Chinese documentation, and the example of the GB 11643 article.
  t.equal(idCardCheckChar('11010519491231002'), 'X');
  t.equal(idCardCheckChar('44052418800101001'), '4');
});

t.test('a valid number yields division code, birth date and sex', async (t) => {
  const r = checkIdCard('11010519491231002X', { today: TODAY });
  t.ok(r.ok);
  if (!r.ok) return;
  t.equal(r.value, '11010519491231002X');
  t.equal(r.divisionCode, '110105');
  t.equal(r.birthDate, '1949-12-31');
  t.equal(r.sex, 'female', '17th digit 2 is even');
  t.equal(r.upgraded, false);

  const m = checkIdCard('330424198503151237', { today: TODAY });
  t.ok(m.ok && m.sex === 'male' && m.birthDate === '1985-03-15', '17th digit 3 is odd: male');
});

t.test('lower-case x is accepted and normalised; surrounding blanks ignored', async (t) => {
  const r = checkIdCard(' 11010519491231002x ', { today: TODAY });
  t.ok(r.ok);
  t.equal(r.ok && r.value, '11010519491231002X');
});

t.test('every 17-digit prefix has exactly one valid check character', async (t) => {
  const chars = '0123456789X';
  let seed = 12345;
  for (let n = 0; n < 50; n++) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    const seq = String(seed % 1000).padStart(3, '0');
    const first17 = `330424${1950 + (seed % 60)}0${1 + (seed % 9)}1${seed % 10}${seq}`;
    const ok = [...chars].filter((c) => checkIdCard(first17 + c, { today: TODAY }).ok);
    t.equal(ok.length, 1, `prefix ${first17}`);
  }
});

t.test('wrong check character names the expected one', async (t) => {
  const f = failure(checkIdCard('110105194912310021', { today: TODAY }));
  t.equal(f.reason, 'check-char');
  t.equal(f.expected, 'X');
  t.match(f.message, /call for X/);
  t.notMatch(f.message, /110105194912310021/, 'the number itself is not echoed');
});

t.test('wrong length', async (t) => {
  t.equal(failure(checkIdCard('11010519491231002', { today: TODAY })).reason, 'length');
  t.equal(failure(checkIdCard('11010519491231002X1', { today: TODAY })).reason, 'length');
  t.equal(failure(checkIdCard('', { today: TODAY })).reason, 'length');
  t.match(failure(checkIdCard('330424620708302')).message, /upgraded/, 'a 15-digit number gets a hint');
});

t.test('non-digit characters are located', async (t) => {
  const f = failure(checkIdCard('1101051949A231002X', { today: TODAY }));
  t.equal(f.reason, 'non-digit');
  t.equal(f.position, 11);
  const x = failure(checkIdCard('X10105194912310021', { today: TODAY }));
  t.equal(x.position, 1, 'X is only allowed as the check character');
  t.equal(failure(checkIdCard('11010519491231002Y', { today: TODAY })).position, 18);
});

t.test('birth dates must be real calendar dates, not in the future', async (t) => {
  const withCheck = (first17: string): string => first17 + idCardCheckChar(first17);
  const cases: [string, RegExp][] = [
    ['33042419900229001', /not a calendar date/], // 1990 is not a leap year
    ['33042419000229001', /not a calendar date/], // 1900 is not a leap year
    ['33042419850431001', /not a calendar date/],
    ['33042419851301001', /no month 13/],
    ['33042419850015001', /no month 0/],
    ['33042419850100001', /not a calendar date/],
    ['33042417990101001', /before 1800/],
    ['33042420250602001', /in the future/],
  ];
  for (const [first17, re] of cases) {
    const f = failure(checkIdCard(withCheck(first17), { today: TODAY }));
    t.equal(f.reason, 'birth-date', first17);
    t.match(f.message, re, first17);
  }
  t.ok(checkIdCard(withCheck('33042420000229004'), { today: TODAY }).ok, '2000-02-29 exists');
  t.ok(checkIdCard(withCheck('33042420250601001'), { today: TODAY }).ok, 'born today is allowed');
});

t.test('15-digit numbers are upgraded with 19 and a computed check character', async (t) => {
  const r = upgradeIdCard('330424620708302', { today: TODAY });
  t.ok(r.ok);
  if (!r.ok) return;
  t.equal(r.value, '33042419620708302' + idCardCheckChar('33042419620708302'));
  t.equal(r.value.length, 18);
  t.ok(checkIdCard(r.value, { today: TODAY }).ok, 'the upgraded number passes the 18-digit check');
  t.equal(r.birthDate, '1962-07-08');
  t.equal(r.sex, 'female', 'last digit 2 of the old number is even');
  t.equal(r.upgraded, true);

  t.equal(failure(upgradeIdCard('33042462070830', { today: TODAY })).reason, 'length');
  t.equal(failure(upgradeIdCard('33042462O708302', { today: TODAY })).position, 9);
  t.equal(failure(upgradeIdCard('330424620230302', { today: TODAY })).reason, 'birth-date', 'Feb 30th');
});

t.test('parseIdCard dispatches on length', async (t) => {
  t.equal(parseIdCard('330424620708302', { today: TODAY }).ok && true, true);
  const p = parseIdCard('330424620708302', { today: TODAY });
  t.equal(p.ok && p.upgraded, true);
  const q = parseIdCard('11010519491231002X', { today: TODAY });
  t.equal(q.ok && q.upgraded, false);
  t.equal(failure(parseIdCard('1234', { today: TODAY })).reason, 'length');
});

t.test('idCardCheckChar refuses anything but 17 digits', async (t) => {
  t.throws(() => idCardCheckChar('1234'));
  t.throws(() => idCardCheckChar('1101051949123100X'));
});
