import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';

export const PALETTE = ['#4f6bed', '#e8590c', '#2f9e44', '#ae3ec9', '#1098ad', '#d6336c', '#f59f00', '#5c7cfa', '#66a80f', '#862e9c', '#0b7285', '#c92a2a'];

/**
 * A uPlot chart that fills its container's width. `build` makes the options for a width;
 * the chart is made again when `deps` change and gets new data via setData otherwise.
 */
export function UChart({
  build,
  data,
  height,
  deps,
  testid,
  onCreate,
}: {
  build: (width: number, height: number) => uPlot.Options;
  data: uPlot.AlignedData;
  height: number;
  deps: unknown[];
  testid?: string;
  onCreate?: (u: uPlot) => void;
}) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const lastData = useRef<uPlot.AlignedData>(data);
  lastData.current = data;

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const width = Math.max(200, el.clientWidth);
    const u = new uPlot(build(width, height), lastData.current, el);
    plot.current = u;
    onCreate?.(u);
    let frame = 0;
    const ro = new ResizeObserver(() => {
      cancelAnimationFrame(frame);
      frame = requestAnimationFrame(() => {
        const w = Math.max(200, el.clientWidth);
        if (Math.abs(w - u.width) > 1) u.setSize({ width: w, height });
      });
    });
    ro.observe(el);
    return () => {
      cancelAnimationFrame(frame);
      ro.disconnect();
      u.destroy();
      plot.current = null;
    };
  }, deps);

  useEffect(() => {
    const u = plot.current;
    if (u && u.data !== data) u.setData(data);
  }, [data]);

  return <div class="chart" ref={box} data-testid={testid} />;
}

export function tzDateFn(utc: boolean, tz?: string): ((ts: number) => Date) | undefined {
  const zone = tz ?? (utc ? 'Etc/UTC' : undefined);
  if (!zone) return undefined;
  return (ts: number) => uPlot.tzDate(new Date(ts * 1e3), zone);
}

/** A tiny line chart for the pipeline page. */
export function Sparkline({ xs, ys, color, testid }: { xs: number[]; ys: (number | null)[]; color: string; testid?: string }) {
  const data: uPlot.AlignedData = [xs, ys];
  return (
    <UChart
      testid={testid}
      height={56}
      deps={[color]}
      data={data}
      build={(width, height) => ({
        width,
        height,
        pxAlign: false,
        cursor: { show: false },
        select: { show: false, left: 0, top: 0, width: 0, height: 0 },
        legend: { show: false },
        scales: { x: { time: true }, y: { range: (_u, min, max) => [Math.min(0, min ?? 0), max && max > 0 ? max * 1.15 : 1] } },
        axes: [{ show: false }, { show: false }],
        series: [{}, { stroke: color, width: 1.5, fill: `${color}22`, points: { show: false }, spanGaps: false }],
        padding: [4, 0, 2, 0],
      })}
    />
  );
}
