/**
 * Prints the scrypt hash of a client secret for the `secretHash` field of the clients file
 * (CLIENTS_FILE). The gateway stores and compares only the hash.
 *
 *   npx tsx scripts/hash-secret.ts --generate     new random secret: prints it, then its hash
 *   printf %s "$SECRET" | npx tsx scripts/hash-secret.ts
 *   npx tsx scripts/hash-secret.ts <secret>       (the secret stays in the shell history)
 */
import { randomBytes } from 'node:crypto';
import { hashSecret } from '../src/auth/secrets.js';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

async function main(): Promise<void> {
  const arg = process.argv[2];
  if (arg === '--help' || arg === '-h') {
    console.log('usage: hash-secret.ts [--generate | <secret>]   (or the secret on standard input)');
    return;
  }
  if (arg === '--generate') {
    const secret = randomBytes(32).toString('base64url');
    console.log(`secret:     ${secret}`);
    console.log(`secretHash: ${await hashSecret(secret)}`);
    return;
  }
  const secret = arg ?? (process.stdin.isTTY ? '' : await readStdin());
  if (secret.length < 12) {
    console.error('give a secret of at least 12 characters (argument or standard input), or --generate');
    process.exit(2);
  }
  console.log(await hashSecret(secret));
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
