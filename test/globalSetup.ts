/**
 * The end-to-end tests run the compiled worker and CLI (dist/). Rebuild them first when any
 * source is newer than the build, so `npx jest` alone never tests stale code.
 */
import { execSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..');

function newest(dir: string): number {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    latest = Math.max(latest, entry.isDirectory() ? newest(full) : statSync(full).mtimeMs);
  }
  return latest;
}

export default function globalSetup(): void {
  const built = path.join(ROOT, 'dist/src/workflow-bundle.js');
  const sources = Math.max(newest(path.join(ROOT, 'src')), newest(path.join(ROOT, 'scripts')));
  if (!existsSync(built) || statSync(built).mtimeMs < sources) {
    execSync('npm run build --silent', { cwd: ROOT, stdio: 'inherit' });
  }
}
