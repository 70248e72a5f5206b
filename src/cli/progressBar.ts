/**
 * The fleet's progress on a terminal: one bar redrawn in place on a TTY, plain lines elsewhere
 * (CI logs, pipes), printed only when something changed.
 */
import type { FleetProgress } from '../shared/types';

export function fleetBar(p: FleetProgress, width = 30): string {
  const done = p.succeeded + p.failed + p.skipped;
  const filled = p.total > 0 ? Math.round((done / p.total) * width) : p.phase === 'done' ? width : 0;
  const bar = `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`;
  if (p.phase === 'finding instances') return `${bar} finding instances…`;
  const copies = Object.entries(p.copySlots)
    .filter(([, s]) => s.inFlight > 0 || s.waiting > 0)
    .map(([region, s]) => `${region} ${s.inFlight}/${s.limit}${s.waiting ? ` +${s.waiting} waiting` : ''}`);
  return (
    `${bar} ${done}/${p.total} done · ${p.succeeded} succeeded · ${p.failed} failed · ${p.skipped} skipped · ${p.inFlight.length} in flight` +
    (copies.length > 0 ? ` · copies ${copies.join(', ')}` : '')
  );
}

export interface ProgressPrinter {
  update(p: FleetProgress): void;
  /** A line that must stay (a failure), printed above the bar. */
  line(text: string): void;
  end(): void;
}

export function progressPrinter(stream: NodeJS.WriteStream): ProgressPrinter {
  const tty = Boolean(stream.isTTY);
  let last = '';
  let drawn = false;
  const clear = () => {
    if (tty && drawn) stream.write('\r\x1b[K');
    drawn = false;
  };
  return {
    update(p) {
      const text = fleetBar(p);
      if (text === last) return;
      last = text;
      if (tty) {
        clear();
        stream.write(text.slice(0, Math.max(20, (stream.columns ?? 120) - 1)));
        drawn = true;
      } else {
        stream.write(`[${new Date().toISOString().slice(11, 19)}] ${text}\n`);
      }
    },
    line(text) {
      clear();
      stream.write(`${text}\n`);
      last = '';
    },
    end() {
      if (tty && drawn) stream.write('\n');
      drawn = false;
    },
  };
}
