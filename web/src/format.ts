import { useEffect, useState } from 'preact/hooks';

// Times are shown in local time (UTC on hover), or in UTC when the toggle says so.

const UTC_KEY = 'eye.utc';
let utc = (() => {
  try {
    return localStorage.getItem(UTC_KEY) === '1';
  } catch {
    return false;
  }
})();
const listeners = new Set<() => void>();

export function isUtc(): boolean {
  return utc;
}

export function setUtc(v: boolean) {
  utc = v;
  try {
    localStorage.setItem(UTC_KEY, v ? '1' : '0');
  } catch {
    /* ignore */
  }
  for (const l of listeners) l();
}

export function useUtc(): boolean {
  const [v, set] = useState(utc);
  useEffect(() => {
    const l = () => set(utc);
    listeners.add(l);
    return () => {
      listeners.delete(l);
    };
  }, []);
  return v;
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** Microseconds survive in the API's text; Date keeps milliseconds. */
function fraction(iso: string): string {
  const m = /\.(\d+)/.exec(iso);
  return m ? m[1].slice(0, 3).padEnd(3, '0') : '000';
}

export function fmtTime(iso: string | null | undefined, asUtc = utc, withMs = true): string {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const ms = withMs ? `.${fraction(iso)}` : '';
  if (asUtc) {
    return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}${ms} UTC`;
  }
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}${ms}`;
}

export function utcTitle(iso: string | null | undefined): string {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${iso}  (UTC: ${fmtTime(iso, true)})`;
}

export function fmtNum(n: number | null | undefined, digits = 2): string {
  if (n === null || n === undefined || Number.isNaN(n)) return '—';
  if (Number.isInteger(n)) return n.toLocaleString('en-US');
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

export function fmtDuration(ms: number): string {
  if (ms < 0) return '—';
  const s = ms / 1000;
  if (s < 1) return `${Math.round(ms)} ms`;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = s / 60;
  if (m < 60) return `${Math.floor(m)} min ${Math.round(s % 60)} s`;
  const h = m / 60;
  if (h < 48) return `${Math.floor(h)} h ${Math.round(m % 60)} min`;
  return `${Math.floor(h / 24)} d ${Math.round(h % 24)} h`;
}

/** Accepts RFC 3339 / ISO text (passed through) or epoch numbers; returns ms or NaN. */
export function parseInputTime(s: string): number {
  const t = s.trim();
  if (t === '') return NaN;
  if (/^-?\d+(\.\d+)?$/.test(t)) {
    const n = Number(t);
    return Math.abs(n) < 1e11 ? n * 1000 : n;
  }
  return new Date(t).getTime();
}

export function isoNoMs(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}
