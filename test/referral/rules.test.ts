/**
 * The graded-diagnosis catalogue: ICD-10 ranges, levels below counted in, and bad files refused at load.
 */
import t from 'tap';
import { inRange, LevelRules, LevelRulesError } from '../../src/referral/index.js';

t.test('ICD-10 ranges and prefixes', async (t) => {
  t.ok(inRange('I10.x00', 'I10-I15'));
  t.ok(inRange('i15.000', 'I10-I15'));
  t.notOk(inRange('I16', 'I10-I15'));
  t.ok(inRange('E11.900', 'E11'));
  t.notOk(inRange('E10.900', 'E11'));
  t.ok(inRange('E11.900', 'E11.9'));
});

t.test('the shipped catalogue', async (t) => {
  const rules = LevelRules.load();
  t.ok(rules.treatedAt('township', 'I10.x00'), 'a township treats what a village treats');
  t.notOk(rules.treatedAt('village', 'J18.900'), 'a village does not treat pneumonia');
  t.notOk(rules.treatedAt('township', 'I21.900'));
  t.ok(rules.treatedAt('county', 'I21.900'));
  t.same(rules.judge({ direction: 'up', from: 'village', to: 'village', conditions: ['I10'], withinCommunity: true }).ok, false);
  t.same(rules.judge({ direction: 'up', from: 'county', to: 'outside', conditions: ['C34.900'], withinCommunity: false }), { ok: true });
  t.match(rules.judge({ direction: 'down', from: 'county', to: 'township', conditions: ['I63.900'], withinCommunity: false }).refusal, /within the sender's community/);
});

t.test('bad files are refused with the place of the fault', async (t) => {
  const good = LevelRules.load().file;
  t.throws(() => LevelRules.parse({ ...good, untreatedDownReferral: 'warn' }), LevelRulesError);
  t.throws(() => LevelRules.parse({ ...good, treats: { village: [{ range: 'I15-I10', name: 'x' }] } }), /runs backwards/);
  t.throws(() => LevelRules.parse({ ...good, treats: { village: [{ range: 'hypertension', name: 'x' }] } }), /\/treats\/village\/0\/range/);
  t.throws(() => LevelRules.parse({ ...good, levels: ['village', 'county'], treats: { township: [] } }), /missing from \/levels/);
  t.throws(() => LevelRules.load('/nonexistent/levels.json'), /Cannot read/);
});
