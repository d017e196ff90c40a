/**
 * Small SVG charts: grouped bars with optional lines (targets), and a sparkline. Enough for the
 * console's figures without a charting library; every chart of the console is one of these.
 */
export interface Series {
  label: string;
  values: (number | undefined)[];
  color: string;
  /** Drawn as a (dashed) line over the bars instead of bars. */
  line?: boolean;
}

/** Grid lines at round values (1, 2 or 5 × a power of ten) from 0 to at least `top`. */
export function niceTicks(top: number, count = 5): number[] {
  const raw = Math.max(top, 1e-9) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((f) => f * power).find((s) => s >= raw) ?? raw;
  const n = Math.ceil(top / step - 1e-9);
  return Array.from({ length: n + 1 }, (_, i) => Math.round(i * step * 1e6) / 1e6);
}

/**
 * Grouped bars by label, with lines (targets) over them. A value left undefined draws no bar (no
 * figure that month) and breaks the line. `max` fixes the top of the scale (100 for percentages).
 */
export function BarChart({ labels, series, height = 220, max, testId }: { labels: string[]; series: Series[]; height?: number; max?: number; testId?: string }) {
  const width = Math.max(360, labels.length * 44 + 60);
  const pad = { left: 44, right: 12, top: 12, bottom: 36 };
  const all = series.flatMap((s) => s.values.filter((v): v is number => v !== undefined));
  const ticks = niceTicks(max ?? Math.max(1, ...all));
  const top = ticks[ticks.length - 1];
  const innerW = width - pad.left - pad.right;
  const innerH = height - pad.top - pad.bottom;
  const step = innerW / Math.max(1, labels.length);
  const bars = series.filter((s) => !s.line);
  const lines = series.filter((s) => s.line);
  const barW = Math.max(3, (step * 0.8) / Math.max(1, bars.length));
  const y = (v: number) => pad.top + innerH - (Math.min(v, top) / top) * innerH;
  return (
    <figure className="chart" data-testid={testId}>
      <svg viewBox={`0 0 ${width} ${height}`} width="100%" role="img">
        {ticks.map((tv) => (
          <g key={tv}>
            <line x1={pad.left} x2={width - pad.right} y1={y(tv)} y2={y(tv)} className="grid" />
            <text x={pad.left - 4} y={y(tv) + 4} className="tick" textAnchor="end">
              {tv}
            </text>
          </g>
        ))}
        {labels.map((l, i) => (
          <g key={l + i}>
            {bars.map((s, j) => {
              const v = s.values[i];
              if (v === undefined) return null;
              return (
                <rect key={s.label} x={pad.left + i * step + step * 0.1 + j * barW} y={y(v)} width={barW - 1} height={Math.max(0, pad.top + innerH - y(v))} fill={s.color}>
                  <title>{`${l} · ${s.label}: ${v}`}</title>
                </rect>
              );
            })}
            <text x={pad.left + i * step + step / 2} y={height - pad.bottom + 14} className="tick" textAnchor="middle">
              {l}
            </text>
          </g>
        ))}
        {lines.map((s) => {
          const pts = s.values.map((v, i) => (v === undefined ? undefined : `${pad.left + i * step + step / 2},${y(v)}`));
          const segments: string[][] = [[]];
          for (const p of pts) {
            if (p === undefined) segments.push([]);
            else segments[segments.length - 1].push(p);
          }
          return (
            <g key={s.label}>
              {segments
                .filter((seg) => seg.length > 0)
                .map((seg, k) =>
                  seg.length === 1 ? (
                    <circle key={k} cx={Number(seg[0].split(',')[0])} cy={Number(seg[0].split(',')[1])} r={3} fill={s.color} />
                  ) : (
                    <polyline key={k} points={seg.join(' ')} fill="none" stroke={s.color} strokeWidth={2} strokeDasharray="6 4" />
                  ),
                )}
            </g>
          );
        })}
      </svg>
      <figcaption className="legend">
        {series.map((s) => (
          <span key={s.label}>
            <i style={{ background: s.color }} className={s.line ? 'line' : ''} /> {s.label}
          </span>
        ))}
      </figcaption>
    </figure>
  );
}

export function Sparkline({ values, errors }: { values: number[]; errors?: number[] }) {
  const w = 120;
  const h = 24;
  const max = Math.max(1, ...values, ...(errors ?? []));
  const step = w / Math.max(1, values.length);
  return (
    <svg viewBox={`0 0 ${w} ${h}`} width={w} height={h} className="spark">
      {values.map((v, i) => (
        <rect key={i} x={i * step} y={h - (v / max) * h} width={Math.max(1, step - 1)} height={(v / max) * h} className="spark-ok" />
      ))}
      {(errors ?? []).map((v, i) => (v > 0 ? <rect key={`e${i}`} x={i * step} y={h - (v / max) * h} width={Math.max(1, step - 1)} height={(v / max) * h} className="spark-err" /> : null))}
    </svg>
  );
}
