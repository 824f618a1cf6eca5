/**
 * Rate-distortion plots as standalone SVG (no dependency, readable in any browser and on GitHub):
 * PSNR and MS-SSIM (dB) against bits per pixel, one line per codec.
 */
import { msssimDb } from './metrics.ts';
import type { RdPoint } from './rd.ts';

const COLOURS = ['#d62728', '#1f77b4', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#7f7f7f'];

interface Panel {
  title: string;
  y: (p: RdPoint) => number;
}

/**
 * Two panels side by side. Our codecs (names in `ours`) are drawn thicker, with markers.
 *
 * @example
 * writeFileSync('docs/rd-kodak.svg', rdPlotSvg(report.codecs, ['ls-f8-q1', 'ls-f8-q2'], 'Kodak'))
 */
export function rdPlotSvg(codecs: Record<string, RdPoint[]>, ours: readonly string[], title: string, maxBpp = 1.6): string {
  const panels: Panel[] = [
    { title: 'PSNR (dB)', y: (p) => p.psnr },
    { title: 'MS-SSIM (dB)', y: (p) => msssimDb(p.msssim) },
  ];
  // Widen the axis (in steps of 0.2) when one of our points lies beyond it.
  const oursMax = Math.max(0, ...ours.flatMap((n) => (codecs[n] ?? []).map((p) => p.bpp)));
  maxBpp = Math.max(maxBpp, Math.ceil((oursMax * 1.05) / 0.2) * 0.2);
  const W = 520;
  const H = 380;
  const M = { l: 56, r: 16, t: 40, b: 48 };
  const names = Object.keys(codecs);
  const svg: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${2 * W}" height="${H + 40}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${W}" y="20" text-anchor="middle" font-size="15">${escape(title)}</text>`,
  ];
  panels.forEach((panel, pi) => {
    const x0 = pi * W;
    const points = names.flatMap((n) => codecs[n].filter((p) => p.bpp <= maxBpp));
    const ys = points.map(panel.y).filter(Number.isFinite);
    const yMin = Math.floor(Math.min(...ys));
    const yMax = Math.ceil(Math.max(...ys));
    const sx = (bpp: number) => x0 + M.l + (bpp / maxBpp) * (W - M.l - M.r);
    const sy = (v: number) => M.t + (1 - (v - yMin) / (yMax - yMin || 1)) * (H - M.t - M.b);
    svg.push(`<rect x="${x0 + M.l}" y="${M.t}" width="${W - M.l - M.r}" height="${H - M.t - M.b}" fill="none" stroke="#999"/>`);
    for (let t = 0; t <= maxBpp + 1e-9; t += 0.2) {
      svg.push(`<text x="${sx(t).toFixed(1)}" y="${H - M.b + 16}" text-anchor="middle">${t.toFixed(1)}</text>`);
    }
    const step = Math.max(1, Math.round((yMax - yMin) / 8));
    for (let v = yMin; v <= yMax; v += step) {
      svg.push(`<line x1="${x0 + M.l}" x2="${x0 + W - M.r}" y1="${sy(v).toFixed(1)}" y2="${sy(v).toFixed(1)}" stroke="#eee"/>`);
      svg.push(`<text x="${x0 + M.l - 6}" y="${(sy(v) + 4).toFixed(1)}" text-anchor="end">${v}</text>`);
    }
    svg.push(`<text x="${x0 + W / 2}" y="${H - 10}" text-anchor="middle">bits per pixel</text>`);
    svg.push(`<text x="${x0 + 14}" y="${H / 2}" text-anchor="middle" transform="rotate(-90 ${x0 + 14} ${H / 2})">${panel.title}</text>`);
    names.forEach((name, i) => {
      const mine = ours.includes(name);
      const pts = codecs[name].filter((p) => p.bpp <= maxBpp && Number.isFinite(panel.y(p))).sort((a, b) => a.bpp - b.bpp);
      const d = pts.map((p, j) => `${j ? 'L' : 'M'}${sx(p.bpp).toFixed(1)},${sy(panel.y(p)).toFixed(1)}`).join('');
      const colour = COLOURS[i % COLOURS.length];
      if (pts.length > 1) svg.push(`<path d="${d}" fill="none" stroke="${colour}" stroke-width="${mine ? 3 : 1.5}"/>`);
      for (const p of pts) {
        svg.push(`<circle cx="${sx(p.bpp).toFixed(1)}" cy="${sy(panel.y(p)).toFixed(1)}" r="${mine ? 4.5 : 2.5}" fill="${colour}"/>`);
      }
      // Legend in the lower right corner, where rate-distortion curves leave room.
      const ly = H - M.b - 10 - 16 * (names.length - 1 - i);
      svg.push(`<line x1="${x0 + W - M.r - 120}" x2="${x0 + W - M.r - 100}" y1="${ly}" y2="${ly}" stroke="${colour}" stroke-width="${mine ? 3 : 1.5}"/>`);
      svg.push(`<text x="${x0 + W - M.r - 95}" y="${ly + 4}">${escape(name)}</text>`);
    });
  });
  svg.push('</svg>');
  return svg.join('\n');
}

function escape(s: string): string {
  return s.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c] as string);
}
