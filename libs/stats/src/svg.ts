/**
 * Inline SVG plots for the report: plain strings, no scripts, no external fonts (the page's
 * font stack is used), so report.html stays self-contained.
 */
import type { Overlaps } from "./overlaps.ts";
import type { VariantSummary } from "./summary.ts";
import type { Sweep } from "./sweeps.ts";

/** Most intersections drawn in the UpSet plot (the table lists all of them). */
export const MAX_UPSET_COLUMNS = 30;

const PALETTE = [
  "#1f77b4",
  "#d62728",
  "#2ca02c",
  "#9467bd",
  "#ff7f0e",
  "#17becf",
  "#8c564b",
  "#e377c2",
];
const FONT = 'font-family="system-ui, sans-serif" font-size="12"';

/** Escapes text for SVG/HTML content and attribute values. */
export function escapeXml(s: string): string {
  return s.replace(
    /[<>&"']/g,
    (c) => `&${{ "<": "lt", ">": "gt", "&": "amp", '"': "quot", "'": "#39" }[c]};`,
  );
}

const f1 = (x: number) => (Math.round(x * 10) / 10).toString();
const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

function svg(width: number, height: number, label: string, body: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${escapeXml(label)}" ${FONT}>${body}</svg>`;
}

function ellipsize(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}

/** Horizontal bars of accuracy per variant with 95 % CI whiskers (across tasks). */
export function accuracyBarsSvg(summaries: readonly VariantSummary[]): string {
  const left = 170;
  const right = 70;
  const plotW = 520;
  const row = 26;
  const top = 24;
  const h = top + row * summaries.length + 34;
  const x = (v: number) => left + v * plotW;
  const parts: string[] = [];
  for (let t = 0; t <= 1.0001; t += 0.2) {
    parts.push(
      `<line x1="${f1(x(t))}" y1="${top - 6}" x2="${f1(x(t))}" y2="${h - 28}" stroke="#ddd"/>`,
      `<text x="${f1(x(t))}" y="${h - 12}" text-anchor="middle" fill="#555">${Math.round(t * 100)}%</text>`,
    );
  }
  summaries.forEach((s, i) => {
    const y = top + i * row;
    const color = PALETTE[i % PALETTE.length]!;
    parts.push(
      `<text x="${left - 8}" y="${y + 16}" text-anchor="end">${escapeXml(ellipsize(s.variant, 24))}</text>`,
    );
    if (s.accuracy === null) {
      parts.push(`<text x="${left + 4}" y="${y + 16}" fill="#888">no scored trials</text>`);
      return;
    }
    parts.push(
      `<rect x="${left}" y="${y + 4}" width="${f1(s.accuracy * plotW)}" height="${row - 8}" fill="${color}" opacity="0.8"><title>${escapeXml(s.variant)}: ${pct(s.accuracy)}</title></rect>`,
    );
    if (s.ci) {
      const cy = y + row / 2;
      parts.push(
        `<line x1="${f1(x(s.ci.low))}" y1="${cy}" x2="${f1(x(s.ci.high))}" y2="${cy}" stroke="#222" stroke-width="1.5"/>`,
        `<line x1="${f1(x(s.ci.low))}" y1="${cy - 6}" x2="${f1(x(s.ci.low))}" y2="${cy + 6}" stroke="#222" stroke-width="1.5"/>`,
        `<line x1="${f1(x(s.ci.high))}" y1="${cy - 6}" x2="${f1(x(s.ci.high))}" y2="${cy + 6}" stroke="#222" stroke-width="1.5"/>`,
      );
    }
    parts.push(`<text x="${left + plotW + 8}" y="${y + 16}">${pct(s.accuracy)}</text>`);
  });
  parts.push(
    `<text x="${left}" y="14" fill="#333">accuracy (mean task reward), whiskers: 95% CI across tasks</text>`,
  );
  return svg(
    left + plotW + right,
    h,
    "accuracy per variant with 95% confidence intervals",
    parts.join(""),
  );
}

/** Task × variant heat map of pass fraction (grey = no scored trial). */
export function heatMapSvg(
  tasks: readonly string[],
  variants: readonly string[],
  passFraction: (variant: string, taskId: string) => number | null,
): string {
  const left = 230;
  const cellW = Math.max(28, Math.min(70, Math.floor(560 / Math.max(1, variants.length))));
  const cellH = 14;
  const top = 110;
  const w = left + cellW * variants.length + 20;
  const h = top + cellH * tasks.length + 44;
  const parts: string[] = [];
  variants.forEach((v, j) => {
    const cx = left + j * cellW + cellW / 2;
    parts.push(
      `<text transform="translate(${f1(cx + 4)},${top - 6}) rotate(-50)" text-anchor="start">${escapeXml(ellipsize(v, 18))}</text>`,
    );
  });
  tasks.forEach((t, i) => {
    const y = top + i * cellH;
    parts.push(
      `<text x="${left - 6}" y="${y + 11}" text-anchor="end" font-size="10">${escapeXml(ellipsize(t, 36))}</text>`,
    );
    variants.forEach((v, j) => {
      const p = passFraction(v, t);
      const fill = p === null ? "#e5e5e5" : heatColor(p);
      const tip = `${t} / ${v}: ${p === null ? "no scored trial" : pct(p)}`;
      parts.push(
        `<rect x="${left + j * cellW}" y="${y}" width="${cellW - 1}" height="${cellH - 1}" fill="${fill}"><title>${escapeXml(tip)}</title></rect>`,
      );
    });
  });
  const ly = top + cellH * tasks.length + 14;
  for (let k = 0; k <= 10; k++) {
    parts.push(
      `<rect x="${left + k * 16}" y="${ly}" width="16" height="10" fill="${heatColor(k / 10)}"/>`,
    );
  }
  parts.push(
    `<text x="${left - 6}" y="${ly + 9}" text-anchor="end" font-size="10">pass fraction 0</text>`,
    `<text x="${left + 11 * 16 + 4}" y="${ly + 9}" font-size="10">1 (grey: no data)</text>`,
  );
  return svg(w, h, "task by variant heat map of pass fraction", parts.join(""));
}

function heatColor(p: number): string {
  // White to dark blue, linear in each channel.
  const lerp = (a: number, b: number) => Math.round(a + (b - a) * p);
  return `rgb(${lerp(247, 8)},${lerp(251, 69)},${lerp(255, 148)})`;
}

/** UpSet-style plot: exclusive intersection sizes over a membership dot matrix. */
export function upsetSvg(overlaps: Overlaps, variants: readonly string[]): string {
  const cols = overlaps.intersections.slice(0, MAX_UPSET_COLUMNS);
  const left = 200;
  const colW = 24;
  const barH = 140;
  const top = 30;
  const rowH = 20;
  const matrixTop = top + barH + 16;
  const w = left + Math.max(1, cols.length) * colW + 30;
  const h = matrixTop + rowH * variants.length + 10;
  const max = Math.max(1, ...cols.map((c) => c.tasks.length));
  const setMax = Math.max(1, ...variants.map((v) => overlaps.solved[v]?.length ?? 0));
  const parts: string[] = [
    `<text x="${left}" y="14" fill="#333">tasks solved (${overlaps.rule === "any" ? "at least once" : "majority of replicas"}) by exactly these variants</text>`,
  ];
  cols.forEach((c, j) => {
    const x = left + j * colW;
    const bh = (c.tasks.length / max) * barH;
    parts.push(
      `<rect x="${x + 4}" y="${f1(top + barH - bh)}" width="${colW - 8}" height="${f1(bh)}" fill="#444"><title>${escapeXml(`${c.label}: ${c.tasks.length}`)}</title></rect>`,
      `<text x="${x + colW / 2}" y="${f1(top + barH - bh - 3)}" text-anchor="middle" font-size="10">${c.tasks.length}</text>`,
    );
  });
  variants.forEach((v, i) => {
    const y = matrixTop + i * rowH + rowH / 2;
    const n = overlaps.solved[v]?.length ?? 0;
    const sw = (n / setMax) * 60;
    parts.push(
      `<rect x="${f1(left - 10 - sw)}" y="${y - 5}" width="${f1(sw)}" height="10" fill="${PALETTE[i % PALETTE.length]}"><title>${escapeXml(`${v}: ${n} solved`)}</title></rect>`,
      `<text x="${f1(left - 16 - sw)}" y="${y + 4}" text-anchor="end">${escapeXml(ellipsize(v, 18))} (${n})</text>`,
    );
    if (i % 2 === 0) {
      parts.push(
        `<rect x="${left}" y="${y - rowH / 2}" width="${Math.max(1, cols.length) * colW}" height="${rowH}" fill="#f3f3f3"/>`,
      );
    }
    cols.forEach((c, j) => {
      const on = c.variants.includes(v);
      parts.push(
        `<circle cx="${left + j * colW + colW / 2}" cy="${y}" r="5" fill="${on ? "#222" : "#ccc"}"/>`,
      );
    });
  });
  cols.forEach((c, j) => {
    const idx = c.variants.map((v) => variants.indexOf(v)).filter((i) => i >= 0);
    if (idx.length < 2) return;
    const cx = left + j * colW + colW / 2;
    const y1 = matrixTop + Math.min(...idx) * rowH + rowH / 2;
    const y2 = matrixTop + Math.max(...idx) * rowH + rowH / 2;
    parts.push(
      `<line x1="${cx}" y1="${y1}" x2="${cx}" y2="${y2}" stroke="#222" stroke-width="2"/>`,
    );
  });
  if (cols.length === 0)
    parts.push(`<text x="${left}" y="${top + 20}" fill="#888">no variant solved any task</text>`);
  return svg(w, h, `UpSet plot of solved tasks (${overlaps.rule})`, parts.join(""));
}

/**
 * Accuracy against a swept parameter with CI bands; per-layer AUC in a panel beside it. A
 * reference (the baseline's accuracy) is drawn as a dashed line.
 */
export function sweepSvg(sweep: Sweep, reference?: { label: string; accuracy: number }): string {
  const panelW = 360;
  const panelH = 220;
  const left = 50;
  const top = 30;
  const gap = 70;
  const withAuc = sweep.layerAuc !== undefined && sweep.layerAuc.length > 0;
  const w = left + panelW + (withAuc ? gap + panelW : 0) + 20;
  const h = top + panelH + 50;
  const xsAll = sweep.series.flatMap((s) => s.points.map((p) => p.value));
  const cats = [...new Set(xsAll.map(String))];
  let xOf: (v: number | string) => number;
  let ticks: { v: number | string; x: number }[];
  if (sweep.numeric) {
    const nums = [...xsAll.map(Number), ...(withAuc ? sweep.layerAuc!.map((a) => a.layer) : [])];
    const lo = Math.min(...nums);
    const hi = Math.max(...nums);
    const span = hi - lo || 1;
    xOf = (v) => left + ((Number(v) - lo) / span) * panelW;
    ticks = [...new Set(xsAll.map(Number))].sort((a, b) => a - b).map((v) => ({ v, x: xOf(v) }));
  } else {
    xOf = (v) => left + ((cats.indexOf(String(v)) + 0.5) / cats.length) * panelW;
    ticks = cats.map((v) => ({ v, x: xOf(v) }));
  }
  const yOf = (a: number) => top + (1 - a) * panelH;
  const parts: string[] = [
    `<text x="${left}" y="16" fill="#333">accuracy vs ${escapeXml(sweep.parameter)} (band: 95% CI)</text>`,
  ];
  const axes = (x0: number) => {
    for (let t = 0; t <= 1.0001; t += 0.25) {
      parts.push(
        `<line x1="${x0}" y1="${f1(yOf(t))}" x2="${x0 + panelW}" y2="${f1(yOf(t))}" stroke="#e3e3e3"/>`,
        `<text x="${x0 - 6}" y="${f1(yOf(t) + 4)}" text-anchor="end" font-size="10">${t.toFixed(2)}</text>`,
      );
    }
  };
  axes(left);
  const maxTicks = 16;
  const step = Math.max(1, Math.ceil(ticks.length / maxTicks));
  ticks.forEach((t, i) => {
    if (i % step !== 0) return;
    parts.push(
      `<text x="${f1(t.x)}" y="${top + panelH + 16}" text-anchor="middle" font-size="10">${escapeXml(ellipsize(String(t.v), 10))}</text>`,
    );
  });
  parts.push(
    `<text x="${left + panelW / 2}" y="${top + panelH + 34}" text-anchor="middle">${escapeXml(sweep.parameter)}</text>`,
  );
  if (reference) {
    const y = f1(yOf(reference.accuracy));
    parts.push(
      `<line x1="${left}" y1="${y}" x2="${left + panelW}" y2="${y}" stroke="#888" stroke-dasharray="5,4"/>`,
      `<text x="${left + panelW - 4}" y="${f1(yOf(reference.accuracy) - 4)}" text-anchor="end" font-size="10" fill="#666">${escapeXml(ellipsize(reference.label, 20))} ${pct(reference.accuracy)}</text>`,
    );
  }
  sweep.series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length]!;
    const pts = s.points.filter((p) => p.accuracy !== null);
    const banded = pts.filter((p) => p.ci !== null);
    if (banded.length >= 2) {
      const upper = banded.map((p) => `${f1(xOf(p.value))},${f1(yOf(p.ci!.high))}`);
      const lower = banded.map((p) => `${f1(xOf(p.value))},${f1(yOf(p.ci!.low))}`).reverse();
      parts.push(
        `<polygon points="${[...upper, ...lower].join(" ")}" fill="${color}" opacity="0.15"/>`,
      );
    }
    if (pts.length >= 2) {
      parts.push(
        `<polyline points="${pts.map((p) => `${f1(xOf(p.value))},${f1(yOf(p.accuracy!))}`).join(" ")}" fill="none" stroke="${color}" stroke-width="2"/>`,
      );
    }
    for (const p of pts) {
      parts.push(
        `<circle cx="${f1(xOf(p.value))}" cy="${f1(yOf(p.accuracy!))}" r="3.5" fill="${color}"><title>${escapeXml(`${p.variant}: ${pct(p.accuracy!)}`)}</title></circle>`,
      );
    }
    if (sweep.series.length > 1) {
      parts.push(
        `<text x="${left + 8}" y="${top + 14 + i * 14}" fill="${color}" font-size="10">${escapeXml(ellipsize(s.label, 40))}</text>`,
      );
    }
  });
  if (withAuc) {
    const x0 = left + panelW + gap;
    const shift = (v: number | string) => xOf(v) - left + x0;
    axes(x0);
    parts.push(
      `<text x="${x0}" y="16" fill="#333">direction AUC per layer</text>`,
      `<polyline points="${sweep.layerAuc!.map((a) => `${f1(shift(a.layer))},${f1(yOf(a.auc))}`).join(" ")}" fill="none" stroke="#555" stroke-width="2"/>`,
      `<text x="${x0 + panelW / 2}" y="${top + panelH + 34}" text-anchor="middle">layer</text>`,
    );
    const layers = sweep.layerAuc!.map((a) => a.layer);
    const every = Math.max(1, Math.ceil(layers.length / 14));
    layers.forEach((l, i) => {
      if (i % every === 0) {
        parts.push(
          `<text x="${f1(shift(l))}" y="${top + panelH + 16}" text-anchor="middle" font-size="10">${l}</text>`,
        );
      }
    });
    for (const a of sweep.layerAuc!) {
      parts.push(
        `<circle cx="${f1(shift(a.layer))}" cy="${f1(yOf(a.auc))}" r="2.5" fill="#555"><title>layer ${a.layer}: AUC ${a.auc.toFixed(3)}</title></circle>`,
      );
    }
  }
  return svg(w, h, `accuracy against ${sweep.parameter}`, parts.join(""));
}
