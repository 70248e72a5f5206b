/** Two small SVG charts (a line chart and a grouped bar chart), written by hand: no dependency. */

const W = 720;
const H = 400;
const M = { top: 40, right: 230, bottom: 50, left: 70 };
const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd'];

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const num = (n: number) => (Math.round(n * 10) / 10).toString();

function frame(title: string, xLabel: string, yLabel: string, body: string[]): string {
  const plotH = H - M.top - M.bottom;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${M.left}" y="22" font-size="15" font-weight="bold">${esc(title)}</text>`,
    `<text x="${M.left + (W - M.left - M.right) / 2}" y="${H - 10}" text-anchor="middle">${esc(xLabel)}</text>`,
    `<text transform="translate(16 ${M.top + plotH / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

function legend(names: string[]): string[] {
  return names.flatMap((name, i) => {
    const y = M.top + 10 + i * 20;
    const x = W - M.right + 15;
    return [
      `<rect x="${x}" y="${y - 9}" width="14" height="10" fill="${COLORS[i % COLORS.length]}"/>`,
      `<text x="${x + 20}" y="${y}">${esc(name)}</text>`,
    ];
  });
}

export interface Series {
  name: string;
  points: Array<[number, number]>;
  /** Measured points drawn as dots on the line. */
  marks?: Array<[number, number]>;
}

/** A line chart; with `logY` the y axis is logarithmic (powers of ten). */
export function lineChart(opts: {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  logY?: boolean;
  xTicks: number[];
}): string {
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const xs = opts.series.flatMap((s) => s.points.map(([x]) => x));
  const ys = opts.series.flatMap((s) => s.points.map(([, y]) => y));
  const xMin = Math.min(...xs);
  const xMax = Math.max(...xs);
  const yTop = opts.logY ? 10 ** Math.ceil(Math.log10(Math.max(...ys))) : niceMax(Math.max(...ys));
  const yBottom = opts.logY ? 1 : 0;
  const fy = (y: number) => (opts.logY ? Math.log10(Math.max(y, 1)) : y);
  const px = (x: number) => M.left + ((x - xMin) / (xMax - xMin || 1)) * plotW;
  const py = (y: number) => M.top + plotH - ((fy(y) - fy(yBottom)) / (fy(yTop) - fy(yBottom) || 1)) * plotH;
  const yTicks = opts.logY ? Array.from({ length: Math.log10(yTop) + 1 }, (_, i) => 10 ** i) : [0, 0.25, 0.5, 0.75, 1].map((f) => f * yTop);
  const body: string[] = [];
  for (const t of yTicks) {
    body.push(`<line x1="${M.left}" x2="${M.left + plotW}" y1="${num(py(t))}" y2="${num(py(t))}" stroke="#ddd"/>`);
    body.push(`<text x="${M.left - 6}" y="${num(py(t) + 4)}" text-anchor="end">${num(t)}</text>`);
  }
  for (const t of opts.xTicks) {
    body.push(`<line x1="${num(px(t))}" x2="${num(px(t))}" y1="${M.top + plotH}" y2="${M.top + plotH + 5}" stroke="#333"/>`);
    body.push(`<text x="${num(px(t))}" y="${M.top + plotH + 18}" text-anchor="middle">${num(t)}</text>`);
  }
  body.push(`<rect x="${M.left}" y="${M.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333"/>`);
  opts.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    const d = s.points.map(([x, y], j) => `${j === 0 ? 'M' : 'L'}${num(px(x))},${num(py(y))}`).join(' ');
    body.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="1.6"/>`);
    for (const [x, y] of s.marks ?? []) body.push(`<circle cx="${num(px(x))}" cy="${num(py(y))}" r="4" fill="${color}" stroke="#000"/>`);
  });
  body.push(...legend(opts.series.map((s) => s.name)));
  return frame(opts.title, opts.xLabel, opts.yLabel, body);
}

function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 2.5, 5, 10].map((m) => m * p).find((c) => c >= v)!;
}

/** Grouped bars: one group per label, one bar per series, values printed over the bars. */
export function barChart(opts: {
  title: string;
  xLabel: string;
  yLabel: string;
  groups: string[];
  series: Array<{ name: string; values: number[] }>;
}): string {
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const yTop = niceMax(Math.max(...opts.series.flatMap((s) => s.values.filter(Number.isFinite))));
  const py = (y: number) => M.top + plotH - (y / yTop) * plotH;
  const groupW = plotW / opts.groups.length;
  const barW = (groupW * 0.8) / opts.series.length;
  const body: string[] = [];
  for (const f of [0, 0.25, 0.5, 0.75, 1]) {
    const y = f * yTop;
    body.push(`<line x1="${M.left}" x2="${M.left + plotW}" y1="${num(py(y))}" y2="${num(py(y))}" stroke="#ddd"/>`);
    body.push(`<text x="${M.left - 6}" y="${num(py(y) + 4)}" text-anchor="end">${num(y)}</text>`);
  }
  opts.groups.forEach((g, gi) => {
    const x0 = M.left + gi * groupW + groupW * 0.1;
    body.push(`<text x="${num(M.left + gi * groupW + groupW / 2)}" y="${M.top + plotH + 18}" text-anchor="middle">${esc(g)}</text>`);
    opts.series.forEach((s, si) => {
      const v = s.values[gi] ?? Number.NaN;
      if (!Number.isFinite(v)) return;
      const x = x0 + si * barW;
      body.push(
        `<rect x="${num(x)}" y="${num(py(v))}" width="${num(barW - 2)}" height="${num(M.top + plotH - py(v))}" fill="${COLORS[si % COLORS.length]}"/>`,
      );
      body.push(`<text x="${num(x + barW / 2 - 1)}" y="${num(py(v) - 4)}" text-anchor="middle" font-size="10">${num(v)}</text>`);
    });
  });
  body.push(`<rect x="${M.left}" y="${M.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333"/>`);
  body.push(...legend(opts.series.map((s) => s.name)));
  return frame(opts.title, opts.xLabel, opts.yLabel, body);
}
