/**
 * Counts passed and failed test points in a TAP stream (tap's `--reporter=tap` output) and prints
 * `N passed, M failed` as its last line. Used by .ci/run.
 *
 *   node --import tsx scripts/tap-summary.ts results.tap    (or TAP on stdin)
 *
 * Leaf assertions are counted, not the subtest summary lines above them. A subtest that failed
 * while none of its own points did (a test file that crashed, exited non-zero, timed out or found
 * no tests) counts as one failure, so a broken file can never pass silently. TODO and SKIP points
 * count as neither. Exit status: 0 when at least one point passed and none failed, 1 otherwise.
 */
import { Parser, type Result } from 'tap-parser';
import { createReadStream } from 'node:fs';

export interface Counts {
  passed: number;
  failed: number;
  skipped: number;
  todo: number;
}

const zero = (): Counts => ({ passed: 0, failed: 0, skipped: 0, todo: 0 });

function add(into: Counts, from: Counts): void {
  into.passed += from.passed;
  into.failed += from.failed;
  into.skipped += from.skipped;
  into.todo += from.todo;
}

/**
 * Follows a parser and its children. tap-parser ends a child subtest (emitting its `complete`)
 * just before it emits the parent's summary point for that subtest, whether the subtest was
 * indented or buffered; so the point following a completed child is that child's summary.
 */
function follow(parser: Parser, counts: Counts): void {
  let child: Counts | undefined;
  parser.on('child', (sub: Parser) => {
    const c = zero();
    follow(sub, c);
    sub.on('complete', () => {
      child = c;
    });
  });
  parser.on('assert', (res: Result) => {
    const sub = child;
    child = undefined;
    if (sub) {
      add(counts, sub);
      if (!res.ok && !res.todo && !res.skip && sub.failed === 0) counts.failed += 1;
      return;
    }
    if (res.todo) counts.todo += 1;
    else if (res.skip) counts.skipped += 1;
    else if (res.ok) counts.passed += 1;
    else counts.failed += 1;
  });
}

export function countTap(input: NodeJS.ReadableStream): Promise<{ counts: Counts; bailedOut: boolean; ok: boolean }> {
  return new Promise((resolve, reject) => {
    const counts = zero();
    const parser = new Parser();
    let bailedOut = false;
    follow(parser, counts);
    parser.on('bailout', () => {
      bailedOut = true;
    });
    parser.on('complete', (final: { ok: boolean }) => resolve({ counts, bailedOut, ok: final.ok }));
    input.on('error', reject);
    input.pipe(parser);
  });
}

async function main(): Promise<void> {
  const file = process.argv[2];
  const { counts, bailedOut, ok } = await countTap(file && file !== '-' ? createReadStream(file) : process.stdin);
  if (bailedOut) counts.failed = Math.max(counts.failed, 1);
  if (!ok && counts.failed === 0) counts.failed = 1;
  const extra = [counts.skipped && `${counts.skipped} skipped`, counts.todo && `${counts.todo} todo`].filter(Boolean);
  if (extra.length > 0) console.log(`(${extra.join(', ')})`);
  console.log(`${counts.passed} passed, ${counts.failed} failed`);
  process.exitCode = counts.failed === 0 && counts.passed > 0 ? 0 : 1;
}

main().catch((e: unknown) => {
  console.error(e);
  console.log('0 passed, 1 failed');
  process.exitCode = 1;
});
