/**
 * Prints the README's configuration table (markdown) from ENV_VARS in src/config.ts, so the
 * documentation lists exactly the variables the code accepts. `npm run docs:config`.
 */
import { pathToFileURL } from 'node:url';
import { ENV_VARS } from '../src/config.js';

type EnvVar = (typeof ENV_VARS)[number];

/** Keeps a table cell on one line and stops `|` from splitting it. */
function cell(text: string): string {
  return text.replace(/\r?\n/g, ' ').replace(/\|/g, '\\|').trim();
}

function typeOf(v: EnvVar): string {
  if (v.enum) return v.enum.map((e) => `\`${e}\``).join(', ');
  const range =
    v.min !== undefined && v.max !== undefined ? ` (${v.min}–${v.max})` : v.min !== undefined ? ` (≥ ${v.min})` : v.max !== undefined ? ` (≤ ${v.max})` : '';
  return `${v.type}${range}`;
}

export function configTable(vars: readonly EnvVar[] = ENV_VARS): string {
  const rows = [
    '| Variable | Type | Default | Description |',
    '| --- | --- | --- | --- |',
    ...vars.map((v) => `| \`${v.name}\` | ${cell(typeOf(v))} | ${v.default === undefined ? '—' : `\`${cell(v.default)}\``} | ${cell(v.description)} |`),
  ];
  return rows.join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) console.log(configTable());
