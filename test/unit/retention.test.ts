import { planRetention, runIdMs, selectForRetention, type RetentionSelection } from '../../src/shared/retention';
import { runIdFor } from '../../src/shared/naming';
import type { BackupImage, RetentionRule } from '../../src/shared/types';
import { mulberry32 as prng } from '../../scripts/prng';

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 5, 30, 12, 0, 0);

/** An image made `daysAgo` days before NOW, available unless told otherwise; its ID is its name. */
function img(id: string, daysAgo: number | undefined, extra: Partial<BackupImage> = {}): BackupImage {
  return {
    region: 'us-east-1',
    imageId: id,
    state: 'available',
    snapshotIds: [`snap-${id}`],
    ...(daysAgo === undefined ? {} : { runId: runIdFor(new Date(NOW - daysAgo * DAY)) }),
    ...extra,
  };
}

const ids = (list: BackupImage[]) => list.map((i) => i.imageId);
const removed = (s: RetentionSelection) => Object.fromEntries(s.remove.map((i) => [i.imageId, i.reason]));

function select(images: BackupImage[], rule: RetentionRule, protect: Iterable<string> = [], nowMs = NOW) {
  return selectForRetention(images, rule, { nowMs, protect: new Set(protect) });
}

describe('runIdMs', () => {
  test('reads a run ID back as the instant it names', () => {
    expect(runIdMs('20260630T120000Z')).toBe(NOW);
    expect(runIdMs(runIdFor(new Date(NOW - 3 * DAY)))).toBe(NOW - 3 * DAY);
  });

  test.each(['', '2026-06-30T12:00:00Z', '20261330T120000Z', '20260230T120000Z', '20260630T126100Z'])('rejects %j', (text) => {
    expect(runIdMs(text)).toBeUndefined();
  });
});

describe('selectForRetention', () => {
  test('keepLast keeps the N newest and says why the others go', () => {
    const s = select([img('a', 1), img('b', 2), img('c', 3), img('d', 4)], { keepLast: 2 });
    expect(ids(s.keep)).toEqual(['a', 'b']);
    expect(removed(s)).toEqual({ c: 'beyond keepLast 2', d: 'beyond keepLast 2' });
  });

  test('orders by the runId tag, not by the order given nor by creationDate', () => {
    const images = [
      img('old', 9, { creationDate: '2026-06-29T00:00:00.000Z' }),
      img('new', 1, { creationDate: '2020-01-01T00:00:00.000Z' }),
      img('mid', 5),
    ];
    const s = select(images, { keepLast: 1 });
    expect(ids(s.keep)).toEqual(['new']);
    expect(ids(s.remove)).toEqual(['mid', 'old']);
  });

  test('falls back to creationDate when there is no (valid) runId, and compares both as instants', () => {
    const images = [
      img('dated', undefined, { creationDate: new Date(NOW - 2 * DAY).toISOString() }),
      img('run', 3),
      img('bad-run', undefined, { runId: 'yesterday', creationDate: new Date(NOW - 1 * DAY).toISOString() }),
    ];
    const s = select(images, { keepLast: 2 });
    expect(ids(s.keep)).toEqual(['bad-run', 'dated']);
    expect(removed(s)).toEqual({ run: 'beyond keepLast 2' });
  });

  test('maxAge removes images older than the age, measured from nowMs', () => {
    const s = select([img('a', 1), img('b', 29), img('c', 31), img('d', 60)], { maxAge: '30d' });
    expect(ids(s.keep)).toEqual(['a', 'b']);
    expect(removed(s)).toEqual({ c: 'older than maxAge 30d', d: 'older than maxAge 30d' });
  });

  test('maxAge: exactly the age is kept, one second more goes', () => {
    const images = [img('new', 0), img('edge', 30), img('over', undefined, { runId: runIdFor(new Date(NOW - 30 * DAY - 1000)) })];
    expect(removed(select(images, { maxAge: '30d' }))).toEqual({ over: 'older than maxAge 30d' });
  });

  test('keepLast and maxAge: an image goes when either says so, with every reason', () => {
    const images = [img('a', 1), img('b', 40), img('c', 2), img('d', 50)];
    const s = select(images, { keepLast: 3, maxAge: '30d' });
    expect(ids(s.keep)).toEqual(['a', 'c']);
    expect(removed(s)).toEqual({ b: 'older than maxAge 30d', d: 'beyond keepLast 3 and older than maxAge 30d' });
  });

  test('the newest available image is never deleted, even when every image is too old', () => {
    const images = [img('a', 40), img('b', 50), img('c', 60)];
    for (const rule of [{ maxAge: '30d' }, { keepLast: 1, maxAge: '30d' }]) {
      const s = select(images, rule);
      expect(ids(s.keep)).toEqual(['a']);
      expect(ids(s.remove)).toEqual(['b', 'c']);
    }
  });

  test('the newest available image is kept even when newer protected images fill keepLast', () => {
    const images = [img('new', 0, { state: 'pending' }), img('a', 1), img('b', 2)];
    const s = select(images, { keepLast: 1 }, ['new']);
    expect(ids(s.keep)).toEqual(['new', 'a']);
    expect(removed(s)).toEqual({ b: 'beyond keepLast 1' });
  });

  test('protected images are always kept and count toward keepLast', () => {
    const images = [img('run', 0), img('a', 1), img('b', 2), img('pinned', 3), img('c', 4)];
    const s = select(images, { keepLast: 2 }, ['run', 'pinned']);
    expect(ids(s.keep)).toEqual(['run', 'a', 'pinned']);
    expect(removed(s)).toEqual({ b: 'beyond keepLast 2', c: 'beyond keepLast 2' });
  });

  test('a protected image is kept even when older than maxAge or failed', () => {
    const images = [img('a', 1), img('pinned', 90), img('broken', 2, { state: 'failed' })];
    const s = select(images, { keepLast: 1, maxAge: '30d' }, ['pinned', 'broken']);
    expect(ids(s.keep)).toEqual(['a', 'broken', 'pinned']);
    expect(s.remove).toEqual([]);
  });

  test('pending and unknown states are kept and do not count toward keepLast', () => {
    const images = [img('p', 0, { state: 'pending' }), img('a', 1), img('t', 2, { state: 'transient' }), img('b', 3), img('c', 4)];
    const s = select(images, { keepLast: 2 });
    expect(ids(s.keep)).toEqual(['p', 'a', 't', 'b']);
    expect(removed(s)).toEqual({ c: 'beyond keepLast 2' });
  });

  test('a pending image is kept however old it is', () => {
    const s = select([img('a', 1), img('stuck', 40, { state: 'pending' })], { maxAge: '30d' });
    expect(ids(s.keep)).toEqual(['a', 'stuck']);
    expect(s.remove).toEqual([]);
  });

  test.each(['failed', 'error', 'invalid'])('an image in state %s goes whatever the rule, and does not count toward keepLast', (state) => {
    const images = [img('broken', 0, { state }), img('a', 1), img('b', 2)];
    const s = select(images, { keepLast: 2 });
    expect(ids(s.keep)).toEqual(['a', 'b']);
    expect(removed(s)).toEqual({ broken: `failed image (${state})` });
    expect(removed(select(images, {}))).toEqual({ broken: `failed image (${state})` });
  });

  test('an image whose age cannot be told is kept and does not count toward keepLast', () => {
    const images = [img('a', 1), img('b', 2), img('nodate', undefined), img('garbage', undefined, { runId: 'x', creationDate: 'soon' })];
    const s = select(images, { keepLast: 1, maxAge: '1h' });
    expect(ids(s.keep)).toEqual(['a', 'garbage', 'nodate']);
    expect(removed(s)).toEqual({ b: 'beyond keepLast 1 and older than maxAge 1h' });
  });

  test('a failed image is removed even when its age is unknown', () => {
    expect(removed(select([img('a', 1), img('x', undefined, { state: 'error' })], { keepLast: 5 }))).toEqual({ x: 'failed image (error)' });
  });

  test('no rule: only failed images go', () => {
    const s = select([img('a', 1), img('b', 400), img('c', 2, { state: 'invalid' })], {});
    expect(ids(s.keep)).toEqual(['a', 'b']);
    expect(ids(s.remove)).toEqual(['c']);
  });

  test('does not modify its input, and gives the same answer whatever the input order', () => {
    const images = [img('c', 3), img('a', 1), img('d', 4), img('b', 2)];
    const copy = structuredClone(images);
    const s1 = select(images, { keepLast: 2 });
    const s2 = select([...images].reverse(), { keepLast: 2 });
    expect(images).toEqual(copy);
    expect(s1).toEqual(s2);
  });
});

describe('planRetention', () => {
  const next = (daysAgo: number) => img('(next run)', daysAgo, { state: 'pending' });

  test('counts the next run’s image toward keepLast and returns only existing images', () => {
    const existing = [img('a', 1), img('b', 2), img('c', 3)];
    const plan = planRetention(existing, { keepLast: 3 }, { nowMs: NOW, newImage: next(0) });
    expect(plan.map((i) => [i.imageId, i.reason])).toEqual([['c', 'beyond keepLast 3']]);
  });

  test('agrees with what the next run deletes once its image exists', () => {
    const existing = [img('a', 1), img('b', 20), img('c', 35), img('d', 3, { state: 'failed' }), img('pinned', 50)];
    const rules: RetentionRule[] = [{ keepLast: 1 }, { keepLast: 2 }, { maxAge: '30d' }, { keepLast: 2, maxAge: '10d' }];
    for (const rule of rules) {
      const plan = planRetention(existing, rule, { nowMs: NOW, newImage: next(0), protect: new Set(['pinned']) });
      // The run: its image is available by then, and protected with the pinned one.
      const made = img('ami-new', 0);
      const run = select([made, ...existing], rule, ['ami-new', 'pinned']);
      expect(plan).toEqual(run.remove);
    }
  });

  test('maxAge is measured from the next run’s clock', () => {
    const existing = [img('a', 1), img('b', 25)];
    expect(planRetention(existing, { maxAge: '30d' }, { nowMs: NOW, newImage: next(0) })).toEqual([]);
    const later = planRetention(existing, { maxAge: '30d' }, { nowMs: NOW + 10 * DAY, newImage: next(-10) });
    expect(later.map((i) => i.imageId)).toEqual(['b']);
  });

  test('an existing image with the new image’s ID is the new image, never a candidate', () => {
    const existing = [img('a', 1), img('b', 2)];
    expect(planRetention(existing, { keepLast: 1 }, { nowMs: NOW, newImage: img('a', 0) }).map((i) => i.imageId)).toEqual(['b']);
  });
});

describe('selectForRetention properties (500 random image sets)', () => {
  const STATES = ['available', 'available', 'available', 'available', 'pending', 'failed', 'error', 'invalid', 'transient', 'disabled'];

  function randomCase(seed: number) {
    const rand = prng(seed);
    const int = (n: number) => Math.floor(rand() * n);
    const pick = <T>(list: readonly T[]) => list[int(list.length)]!;
    const images: BackupImage[] = [];
    const count = int(15);
    for (let i = 0; i < count; i++) {
      const ageMs = int(120) * DAY + int(DAY);
      const dating = int(10);
      images.push({
        region: 'us-east-1',
        imageId: `ami-${seed}-${i}`,
        state: pick(STATES),
        snapshotIds: [],
        // Mostly run IDs (some shared by two images), sometimes only a creation date, rarely neither.
        ...(dating < 7 ? { runId: runIdFor(new Date(NOW - (int(4) === 0 ? int(3) * DAY : ageMs))) } : {}),
        ...(dating >= 7 && dating < 9 ? { creationDate: new Date(NOW - ageMs).toISOString() } : {}),
      });
    }
    const protect = new Set(images.filter(() => rand() < 0.15).map((i) => i.imageId));
    if (rand() < 0.2) protect.add('ami-not-listed');
    const ruleKind = int(3);
    const rule: RetentionRule = {
      ...(ruleKind !== 1 ? { keepLast: 1 + int(6) } : {}),
      ...(ruleKind !== 0 ? { maxAge: pick(['1h', '7d', '30d', '90d']) } : {}),
    };
    return { images, protect, rule };
  }

  test('hold for every case', () => {
    let checkedKeepLast = 0;
    for (let seed = 1; seed <= 500; seed++) {
      const { images, protect, rule } = randomCase(seed);
      const { keep, remove } = selectForRetention(images, rule, { nowMs: NOW, protect });
      const why = `seed ${seed}, rule ${JSON.stringify(rule)}`;
      const removedIds = new Set(ids(remove));

      // keep and remove partition the input.
      expect({ why, ids: [...ids(keep), ...removedIds].sort() }).toEqual({ why, ids: ids(images).sort() });
      expect({ why, overlap: ids(keep).filter((id) => removedIds.has(id)) }).toEqual({ why, overlap: [] });
      // Protected images are never removed; pending (and unknown) images never are either.
      expect({ why, removed: ids(remove).filter((id) => protect.has(id)) }).toEqual({ why, removed: [] });
      expect({ why, states: remove.filter((i) => !['available', 'failed', 'error', 'invalid'].includes(i.state)) }).toEqual({
        why,
        states: [],
      });
      // The newest available image stays: the chain is never emptied.
      const available = images.filter((i) => i.state === 'available');
      const dated = available.filter((i) => i.runId || i.creationDate);
      if (dated.length > 0) {
        const time = (i: BackupImage) => runIdMs(i.runId ?? '') ?? Date.parse(i.creationDate!);
        const newest = Math.max(...dated.map(time));
        const newestKept = keep.some((i) => i.state === 'available' && (i.runId || i.creationDate) && time(i) === newest);
        expect({ why, newestKept }).toEqual({ why, newestKept: true });
      }
      if (available.length > 0)
        expect({ why, keptAvailable: keep.some((i) => i.state === 'available') }).toEqual({ why, keptAvailable: true });
      // keepLast alone keeps at least min(keepLast, available) available images, when protected
      // images are available ones (as in a run: the image it made, the one the SSM parameter holds).
      // Protected images in other states take a place among the keepLast too, so in general the
      // bound is on available-or-protected images.
      if (rule.keepLast !== undefined && rule.maxAge === undefined) {
        const counted = (list: BackupImage[]) => list.filter((i) => i.state === 'available' || protect.has(i.imageId)).length;
        expect({ why, enough: counted(keep) >= Math.min(rule.keepLast, counted(images)) }).toEqual({ why, enough: true });
        if (images.every((i) => !protect.has(i.imageId) || i.state === 'available')) {
          const keptAvailable = keep.filter((i) => i.state === 'available').length;
          expect({ why, enough: keptAvailable >= Math.min(rule.keepLast, available.length) }).toEqual({ why, enough: true });
          checkedKeepLast++;
        }
      }
      // Every removal says why, in the words of the rule.
      for (const r of remove)
        expect(r.reason).toMatch(
          /^(failed image \(\w+\)|beyond keepLast \d+|older than maxAge \w+|beyond keepLast \d+ and older than maxAge \w+)$/,
        );
    }
    // The generator must exercise the keepLast-only bound, not skip it.
    expect(checkedKeepLast).toBeGreaterThan(50);
  });
});
