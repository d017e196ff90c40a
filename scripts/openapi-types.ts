/**
 * Generates src/openapi/types.ts from openapi/gateway.yaml with openapi-typescript.
 *
 *   tsx scripts/openapi-types.ts          write the types (npm run gen:openapi)
 *   tsx scripts/openapi-types.ts --check  regenerate into a temp file and exit 1 if the committed
 *                                         types differ (npm run check:openapi, part of npm run lint)
 */
import openapiTS, { astToString, COMMENT_HEADER } from 'openapi-typescript';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const SOURCE = join(root, 'openapi', 'gateway.yaml');
const TARGET = join(root, 'src', 'openapi', 'types.ts');

async function generate(): Promise<string> {
  const ast = await openapiTS(pathToFileURL(SOURCE), { alphabetize: false });
  return COMMENT_HEADER + astToString(ast);
}

function firstDifference(a: string, b: string): string {
  const al = a.split('\n');
  const bl = b.split('\n');
  for (let i = 0; i < Math.max(al.length, bl.length); i++) {
    if (al[i] !== bl[i]) return `line ${i + 1}:\n  committed: ${al[i] ?? '<end of file>'}\n  generated: ${bl[i] ?? '<end of file>'}`;
  }
  return 'no line differs';
}

async function main(): Promise<void> {
  const check = process.argv.includes('--check');
  const generated = await generate();
  if (!check) {
    writeFileSync(TARGET, generated);
    console.log(`wrote ${relative(root, TARGET)} from ${relative(root, SOURCE)}`);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'openapi-types-'));
  try {
    const fresh = join(dir, 'types.ts');
    writeFileSync(fresh, generated);
    let committed = '';
    try {
      committed = readFileSync(TARGET, 'utf8');
    } catch {
      console.error(`${relative(root, TARGET)} is missing: run npm run gen:openapi`);
      process.exit(1);
    }
    if (committed !== readFileSync(fresh, 'utf8')) {
      console.error(`${relative(root, TARGET)} is stale relative to ${relative(root, SOURCE)}: run npm run gen:openapi`);
      console.error(firstDifference(committed, generated));
      process.exit(1);
    }
    console.log(`${relative(root, TARGET)} is up to date`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
