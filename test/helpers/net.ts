/**
 * A TCP port free on loopback right now, for a listener a test starts itself (MLLP: port 0
 * means "no listener" in the gateway's configuration, so tests pick a real free port).
 */
import { createServer } from 'node:net';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}
