#!/usr/bin/env node
// Drives The Eye's explorer (/ui/) in headless Chromium and reports what it saw.
//
//   node web/test/explorer.mjs input.json
//
// Prints ONE JSON object on stdout (see the end of run()); logs go to stderr. The driver only
// observes and reports; the Rust end-to-end test asserts. Exits non-zero, with the reason on
// stderr and no stdout, when the page can't be driven at all (e.g. a selector never appears).
//
// Input (all but base_url and screenshots_dir optional):
//   {"base_url":"http://127.0.0.1:PORT", "api_key":"eye_x.y", "client_id":"c", "client_secret":"s",
//    "screenshots_dir":"/abs/dir", "session_id":"s-1",
//    "listing":{"category","name","from","to"},
//    "trend":{"category","name","from","to","granularity","agg","tz","fill"?},
//    "trend_year":{…as trend}?, "live":{"ingest_url","category","name"?,"count"?}?,
//    "rejected":{"marker":"<script>…</script>"}, "user_id":"u-1", "machine_id":"m-1"}
// Output (one line of JSON):
//   session_event_ids [id…] in the order the session view shows them (all pages)
//   listing_event_ids [id…] the events view, filtered by `listing`, after "Load more" until none
//   trend_points [{start, value (number|null), count}] the table under the chart
//   trend_tooltip  the chart's hover text ("<bucket start>\n<agg>: <value>\ncount: <n>")
//   rejected {found, text (the row's textContent), rejection_id, contains_marker, script_executed}
//   signin {api_key_ok, client_credentials_ok, token_in_session_storage, cleared_on_sign_out,
//           credential_in_url, credential_in_cookie, unauthorized_returns_to_signin, unauthorized_reason}
//   user_sessions [session id…], machine_event_ids [id…]
//   catalogue_types [{category, name, events, has_schema}]
//   pipeline {shown, text (innerText of the view)}
//   console_errors {signin, find, session, events, trends, rejected, catalogue, pipeline, unauthorized: [text…]}
//   timings_ms {find, session, events, trends, catalogue, rejected, pipeline, trends_redraw,
//               trends_year, trends_year_redraw} (null if absent): each view's open → ready
//   cold_open_ms {view: ms} each view loaded cold from its link: navigation start → ready
//   trend_year_points  rows drawn for `trend_year` (a year of daily buckets), when given
//   live {sent [id…], late, shown [id…], ms}: with `live`, events posted to ingest (with api_key)
//        after the events view opened in live mode, and what that view then showed; the last
//        sent (`late`) is timed a minute before the others and sent once they were shown;
//        ms: from the first send until the others were shown
//   screenshots [path…] signin, session, events, trends, trends-year, rejected, catalogue, pipeline, find,
//               find-machine, unauthorized (.png, 1280 wide, full page up to 2400 px tall)
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const TIMEOUT_MS = 15_000;
const VIEWS = ['find', 'session', 'events', 'trends', 'catalogue', 'rejected', 'pipeline'];

const log = (...a) => console.error('[explorer]', ...a);

class DriveError extends Error {}

function readInput() {
  const path = process.argv[2];
  if (!path) {
    console.error('usage: node web/test/explorer.mjs <input.json>');
    process.exit(2);
  }
  const input = JSON.parse(readFileSync(path, 'utf8'));
  for (const k of ['base_url', 'screenshots_dir']) {
    if (!input[k]) throw new DriveError(`input lacks "${k}"`);
  }
  input.base_url = String(input.base_url).replace(/\/+$/, '');
  return input;
}

function hashFor(view, params = {}) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') u.set(k, String(v));
  const s = u.toString();
  return `#/${view}${s ? `?${s}` : ''}`;
}

async function run(input) {
  const out = {
    session_event_ids: [],
    listing_event_ids: [],
    trend_points: [],
    trend_tooltip: '',
    rejected: { found: false, text: '', contains_marker: false, script_executed: false },
    signin: {
      api_key_ok: false,
      client_credentials_ok: false,
      token_in_session_storage: false,
      cleared_on_sign_out: false,
      credential_in_url: false,
      credential_in_cookie: false,
      unauthorized_returns_to_signin: false,
      unauthorized_reason: '',
    },
    user_sessions: [],
    machine_event_ids: [],
    catalogue_types: [],
    pipeline: { shown: false, text: '' },
    console_errors: {},
    timings_ms: {},
    screenshots: [],
  };
  mkdirSync(input.screenshots_dir, { recursive: true });

  const browser = await chromium.launch({
    executablePath: process.env.EYE_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, deviceScaleFactor: 1, locale: 'en-US', timezoneId: 'UTC' });
    const page = await context.newPage();
    page.setDefaultTimeout(TIMEOUT_MS);

    // ---- Observers ----
    let bucket = 'signin';
    const errors = (out.console_errors = {});
    const note = (text) => (errors[bucket] ??= []).push(text);
    page.on('console', (m) => {
      if (m.type() === 'error') note(`console: ${m.text()}${m.location()?.url ? ` (${m.location().url})` : ''}`);
    });
    page.on('pageerror', (e) => note(`pageerror: ${e?.message ?? e}`));
    const urls = new Set();
    page.on('framenavigated', (f) => {
      if (f === page.mainFrame()) urls.add(f.url());
    });
    page.on('request', (r) => urls.add(r.url()));
    const secrets = [input.api_key, input.client_secret].filter((s) => typeof s === 'string' && s.length >= 4);
    const enter = (name) => {
      bucket = name;
      errors[name] ??= [];
    };

    // ---- Helpers ----
    const ui = `${input.base_url}/ui/`;
    const need = async (selector, what) => {
      try {
        return await page.waitForSelector(selector, { timeout: TIMEOUT_MS, state: 'visible' });
      } catch {
        throw new DriveError(`${what}: ${selector} did not appear within ${TIMEOUT_MS / 1000} s (at ${page.url()})`);
      }
    };
    const readyCount = (view) => page.evaluate((v) => performance.getEntriesByName(`eye:ready:${v}`, 'mark').length, view);
    const waitReady = async (view, before) => {
      try {
        await page.waitForFunction(([v, n]) => performance.getEntriesByName(`eye:ready:${v}`, 'mark').length > n, [view, before], { timeout: TIMEOUT_MS, polling: 50 });
      } catch {
        throw new DriveError(`view ${view} never marked eye:ready:${view} within ${TIMEOUT_MS / 1000} s (at ${page.url()})`);
      }
    };
    const go = async (view, params = {}) => {
      const before = await readyCount(view);
      const h = hashFor(view, params);
      const same = await page.evaluate((x) => {
        if (location.hash === x) return true;
        location.hash = x;
        return false;
      }, h);
      await need(`[data-testid="view-${view}"]`, `view ${view}`);
      await waitReady(view, same ? Math.min(before, 0) : before);
    };
    const measure = (name) =>
      page.evaluate((n) => {
        const m = performance.getEntriesByName(n, 'measure');
        return m.length ? m[m.length - 1].duration : null;
      }, name);
    const shot = async (name, viewportOnly = false) => {
      const path = join(input.screenshots_dir, `${name}.png`);
      if (viewportOnly) {
        await page.screenshot({ path });
        out.screenshots.push(path);
        return;
      }
      // Full page, but at most 2400 px tall: a 250-row table makes an unreadable picture.
      const height = await page.evaluate(() => document.documentElement.scrollHeight);
      await page.screenshot({ path, fullPage: true, clip: { x: 0, y: 0, width: 1280, height: Math.min(Math.max(height, 800), 2400) } });
      out.screenshots.push(path);
    };
    /** Clicks "Load more" inside `scope` until it is gone; counts rows matching rowSel. */
    const loadAll = async (scope, rowSel, maxClicks = 500) => {
      for (let i = 0; i < maxClicks; i++) {
        const btn = await page.$(`${scope} [data-testid="load-more"]`);
        if (!btn) return;
        const n = await page.$$eval(`${scope} ${rowSel}`, (r) => r.length);
        await btn.click();
        try {
          await page.waitForFunction(
            ([s, r, c]) => {
              const b = document.querySelector(`${s} [data-testid="load-more"]`);
              return document.querySelectorAll(`${s} ${r}`).length > c || !b || (b.disabled === false && document.querySelectorAll(`${s} [data-testid="error"]`).length > 0);
            },
            [scope, rowSel, n],
            { timeout: TIMEOUT_MS, polling: 50 },
          );
        } catch {
          throw new DriveError(`"Load more" in ${scope} did not load anything within ${TIMEOUT_MS / 1000} s`);
        }
        if (await page.$(`${scope} [data-testid="error"]`)) {
          log(`load more in ${scope} answered an error; stopping`);
          return;
        }
      }
    };
    const storedAuth = () => page.evaluate(() => sessionStorage.getItem('eye.auth'));
    const allSessionStorage = () => page.evaluate(() => Object.keys(sessionStorage).map((k) => `${k}=${sessionStorage.getItem(k)}`).join('\n'));

    // ---- 1. Sign-in: API key, sign out, then client credentials ----
    enter('signin');
    log('open', ui);
    await page.goto(ui, { waitUntil: 'domcontentloaded' });
    await need('[data-testid="signin-form"]', 'sign-in form');
    await shot('signin');
    let keyStored = false;
    if (input.api_key) {
      await page.click('[data-testid="signin-tab-key"]');
      await page.fill('[data-testid="input-api-key"]', input.api_key);
      await page.click('[data-testid="signin-submit"]');
      await need('[data-testid="app"]', 'app after API-key sign-in');
      out.signin.api_key_ok = true;
      const a = JSON.parse((await storedAuth()) ?? 'null');
      keyStored = a?.token === input.api_key;
      await page.click('[data-testid="sign-out"]');
      await need('[data-testid="signin-form"]', 'sign-in form after sign out');
      const left = await allSessionStorage();
      out.signin.cleared_on_sign_out = (await storedAuth()) === null && !left.includes(input.api_key);
    }
    await page.click('[data-testid="signin-tab-client"]');
    await page.fill('[data-testid="input-client-id"]', input.client_id ?? '');
    await page.fill('[data-testid="input-client-secret"]', input.client_secret ?? '');
    await page.click('[data-testid="signin-submit"]');
    await need('[data-testid="app"]', 'app after client-credentials sign-in');
    out.signin.client_credentials_ok = true;
    const clientAuth = JSON.parse((await storedAuth()) ?? 'null');
    const accessToken = clientAuth?.token ?? '';
    if (accessToken.length >= 8) secrets.push(accessToken);
    out.signin.token_in_session_storage = (input.api_key ? keyStored : true) && clientAuth?.kind === 'client_credentials' && accessToken.length > 0;

    // ---- 2. Find → session ----
    enter('find');
    await go('find');
    enter('session');
    if (input.session_id) {
      const before = await readyCount('session');
      await page.fill('[data-testid="find-session"]', input.session_id);
      await page.click('[data-testid="find-session-submit"]');
      await need('[data-testid="view-session"]', 'session view');
      await waitReady('session', before);
      await loadAll('[data-testid="session-events"]', 'tr[data-event-id]');
      out.session_event_ids = await page.$$eval('[data-testid="view-session"] tr[data-event-id]', (rows) => rows.map((r) => r.getAttribute('data-event-id')));
      // Open the first event's data so the screenshot shows it.
      const t = await page.$('[data-testid="view-session"] [data-testid="toggle-data"]');
      if (t) await t.click();
      out.timings_ms.session = await measure('eye:view:session');
      await shot('session');
    } else {
      await go('session');
      out.timings_ms.session = await measure('eye:view:session');
    }

    // ---- 3. Events, filtered by the listing, every page ----
    enter('events');
    const l = input.listing ?? {};
    await go('events', { category: l.category, name: l.name, from: l.from, to: l.to });
    await loadAll('[data-testid="events-results"]', 'tr[data-event-id]');
    out.listing_event_ids = await page.$$eval('[data-testid="events-results"] tr[data-event-id]', (rows) => rows.map((r) => r.getAttribute('data-event-id')));
    out.timings_ms.events = await measure('eye:view:events');
    await page.evaluate(() => window.scrollTo(0, 0));
    await shot('events');

    // ---- 3b. Live: events sent after the view opened appear without a reload ----
    if (input.live) {
      const lv = input.live;
      await go('events', { category: lv.category, live: 1 });
      const sent = [];
      const post = async (i, at) => {
        const id = crypto.randomUUID();
        const res = await fetch(`${lv.ingest_url.replace(/\/+$/, '')}/v1/events`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${input.api_key}` },
          body: JSON.stringify([{ event_id: id, session_id: `live-${i}`, category: lv.category, name: lv.name ?? 'tick', timestamp: at.toISOString(), data: { i } }]),
        });
        if (!res.ok) throw new DriveError(`sending a live event: ${res.status} ${await res.text()}`);
        return id;
      };
      const shownAll = async (ids, what) => {
        try {
          await page.waitForFunction((want) => want.every((id) => document.querySelector(`[data-testid="events-results"] tr[data-event-id="${id}"]`)), ids, { timeout: 30_000, polling: 100 });
        } catch {
          log(`live mode did not show ${what} within 30 s`);
        }
      };
      const startedAt = Date.now();
      const count = lv.count ?? 3;
      for (let i = 0; i < count; i++) sent.push(await post(i, new Date()));
      await shownAll(sent, 'every sent event');
      const ms = Date.now() - startedAt;
      // A late arrival: timed a minute before the events already shown, as an event held up
      // on its way (another partition, a client's retry) is.
      const late = await post(count, new Date(startedAt - 60_000));
      sent.push(late);
      await shownAll([late], 'the late event');
      out.live = {
        sent,
        late,
        shown: await page.$$eval('[data-testid="events-results"] tr[data-event-id]', (rows) => rows.map((r) => r.getAttribute('data-event-id'))),
        ms,
      };
    }

    // ---- 4. Trends ----
    enter('trends');
    const t = input.trend ?? {};
    await go('trends', { category: t.category, name: t.name, from: t.from, to: t.to, granularity: t.granularity, agg: t.agg, tz: t.tz, fill: t.fill });
    out.trend_points = await page.$$eval('[data-testid="trend-row"]', (rows) =>
      rows.map((r) => {
        const v = r.getAttribute('data-value');
        return { start: r.getAttribute('data-start'), value: v === '' || v === null ? null : Number(v), count: Number(r.getAttribute('data-count')) };
      }),
    );
    if (out.trend_points.length > 0) {
      try {
        await page.waitForFunction(() => performance.getEntriesByName('eye:trends:redraw', 'measure').length > 0, null, { timeout: TIMEOUT_MS });
      } catch {
        log('no eye:trends:redraw measure');
      }
      const over = await need('[data-testid="trend-chart"] .u-over', 'trend chart');
      const box = await over.boundingBox();
      // Sweep across the plot until the tooltip shows (uPlot snaps to the nearest bucket).
      for (const fx of [0.5, 0.25, 0.75, 0.1, 0.9]) {
        await page.mouse.move(box.x + box.width * fx, box.y + box.height / 2, { steps: 4 });
        const txt = await page.evaluate(() => {
          const el = document.querySelector('[data-testid="trend-tooltip"]');
          return el && !el.hidden ? el.textContent : '';
        });
        if (txt) {
          out.trend_tooltip = txt;
          break;
        }
      }
    }
    out.timings_ms.trends = await measure('eye:view:trends');
    out.timings_ms.trends_redraw = await measure('eye:trends:redraw');
    await shot('trends');
    await page.mouse.move(0, 0);

    // ---- 4b. A year of daily buckets (over the stored million, when the test has one) ----
    if (input.trend_year) {
      const y = input.trend_year;
      const redraws = () => page.evaluate(() => performance.getEntriesByName('eye:trends:redraw', 'measure').length);
      const before = await redraws();
      await go('trends', { category: y.category, name: y.name, from: y.from, to: y.to, granularity: y.granularity, agg: y.agg, tz: y.tz, fill: y.fill });
      try {
        await page.waitForFunction((n) => performance.getEntriesByName('eye:trends:redraw', 'measure').length > n, before, { timeout: TIMEOUT_MS, polling: 50 });
      } catch {
        log('no eye:trends:redraw measure for the year');
      }
      out.trend_year_points = await page.$$eval('[data-testid="trend-row"]', (rows) => rows.length);
      out.timings_ms.trends_year = await measure('eye:view:trends');
      out.timings_ms.trends_year_redraw = await measure('eye:trends:redraw');
      await shot('trends-year');
    }

    // ---- 5. Rejected: the marker is shown as text, never run ----
    enter('rejected');
    await go('rejected');
    const marker = input.rejected?.marker ?? '';
    const findMarker = () =>
      page.evaluate((m) => {
        for (const row of document.querySelectorAll('[data-testid="rejected-row"]')) {
          if (m && row.textContent.includes(m)) {
            row.scrollIntoView({ block: 'center' });
            return { id: row.getAttribute('data-rejection-id'), text: row.textContent };
          }
        }
        return null;
      }, marker);
    let hit = marker ? await findMarker() : null;
    for (let i = 0; marker && !hit && i < 100; i++) {
      const btn = await page.$('[data-testid="rejected-results"] [data-testid="load-more"]');
      if (!btn) break;
      const n = await page.$$eval('[data-testid="rejected-row"]', (r) => r.length);
      await btn.click();
      await page.waitForFunction((c) => document.querySelectorAll('[data-testid="rejected-row"]').length > c || !document.querySelector('[data-testid="rejected-results"] [data-testid="load-more"]'), n, { timeout: TIMEOUT_MS });
      hit = await findMarker();
    }
    out.rejected.found = !!hit;
    out.rejected.text = hit?.text ?? '';
    out.rejected.rejection_id = hit?.id ?? null;
    out.rejected.contains_marker = !!hit && hit.text.includes(marker);
    out.rejected.script_executed = await page.evaluate(() => typeof window.__eyePwned !== 'undefined');
    out.timings_ms.rejected = await measure('eye:view:rejected');
    // With the marker's row found, show it (it was scrolled into view).
    await shot('rejected', !!hit);

    // ---- 6. Catalogue, pipeline, find by user and by machine ----
    enter('catalogue');
    await go('catalogue');
    out.catalogue_types = await page.$$eval('[data-testid="catalogue-row"]', (rows) =>
      rows.map((r) => ({ category: r.getAttribute('data-category'), name: r.getAttribute('data-name'), events: Number(r.getAttribute('data-events')), has_schema: r.getAttribute('data-has-schema') === 'true' })),
    );
    const schemaBtn = await page.$('[data-testid="toggle-schema"]');
    if (schemaBtn) await schemaBtn.click();
    out.timings_ms.catalogue = await measure('eye:view:catalogue');
    await shot('catalogue');

    enter('pipeline');
    await go('pipeline');
    // Two samples (2 s apart) give the rates; wait for them, but not forever.
    try {
      await page.waitForFunction(() => !document.querySelector('[data-testid="metric-ingest-rate"]')?.textContent?.includes('measuring'), null, { timeout: 6000 });
    } catch {
      /* still measuring, or no pipeline */
    }
    out.pipeline.shown = (await page.$('[data-testid="pipeline"]')) !== null;
    out.pipeline.text = (await page.$eval('[data-testid="view-pipeline"]', (e) => e.innerText)) ?? '';
    out.timings_ms.pipeline = await measure('eye:view:pipeline');
    await shot('pipeline');

    enter('find');
    if (input.user_id) {
      await go('find');
      const before = await readyCount('find');
      await page.fill('[data-testid="find-user"]', input.user_id);
      await page.click('[data-testid="find-user-submit"]');
      await need('[data-testid="user-sessions"]', 'user sessions');
      await waitReady('find', before);
      await loadAll('[data-testid="user-sessions"]', 'tr[data-session-id]');
      out.user_sessions = await page.$$eval('[data-testid="user-sessions"] tr[data-session-id]', (rows) => rows.map((r) => r.getAttribute('data-session-id')));
      out.timings_ms.find = await measure('eye:view:find');
      await shot('find');
    }
    if (input.machine_id) {
      await go('find');
      const before = await readyCount('find');
      await page.fill('[data-testid="find-machine"]', input.machine_id);
      await page.click('[data-testid="find-machine-submit"]');
      await need('[data-testid="machine-events"]', 'machine events');
      await waitReady('find', before);
      await loadAll('[data-testid="machine-events"]', 'tr[data-event-id]');
      out.machine_event_ids = await page.$$eval('[data-testid="machine-events"] tr[data-event-id]', (rows) => rows.map((r) => r.getAttribute('data-event-id')));
      out.timings_ms.find ??= await measure('eye:view:find');
      await shot('find-machine');
    }
    if (out.timings_ms.find === undefined) {
      await go('find');
      out.timings_ms.find = await measure('eye:view:find');
      await shot('find');
    }

    // ---- Credentials never in a URL or a cookie ----
    urls.add(page.url());
    out.signin.credential_in_url = [...urls].some((u) => secrets.some((s) => u.includes(s) || u.includes(encodeURIComponent(s))));
    const cookies = await context.cookies();
    out.signin.credential_in_cookie = cookies.some((c) => secrets.some((s) => c.value.includes(s)));

    // ---- 6b. Each view opened cold: a page load straight onto its link, signed in ----
    // From the navigation's start (the Performance API's time origin) to the view's ready mark.
    enter('cold');
    out.cold_open_ms = {};
    const y = input.trend_year ?? input.trend ?? {};
    const cold = [
      ['find', input.user_id ? { user: input.user_id } : {}],
      ['session', input.session_id ? { id: input.session_id } : {}],
      ['events', { category: l.category, name: l.name }],
      ['trends', { category: y.category, name: y.name, from: y.from, to: y.to, granularity: y.granularity, agg: y.agg, tz: y.tz }],
      ['catalogue', {}],
      ['rejected', {}],
      ['pipeline', {}],
    ];
    for (const [view, params] of cold) {
      await page.goto('about:blank');
      await page.goto(`${ui}${hashFor(view, params)}`, { waitUntil: 'domcontentloaded' });
      try {
        await page.waitForFunction((v) => performance.getEntriesByName(`eye:ready:${v}`, 'mark').length > 0, view, { timeout: TIMEOUT_MS, polling: 20 });
      } catch {
        throw new DriveError(`view ${view}, opened cold, never marked eye:ready:${view} within ${TIMEOUT_MS / 1000} s`);
      }
      out.cold_open_ms[view] = await page.evaluate((v) => performance.getEntriesByName(`eye:ready:${v}`, 'mark')[0].startTime, view);
    }

    // ---- 7. A bad token returns to sign-in with the API's reason ----
    enter('unauthorized');
    // The bogus credential is planted before the app's own script runs, on a fresh page load:
    // planted into a running page, any request that page starts before it unloads would meet
    // the 401 first and sign out, and the reason (kept in the page's memory) would go with it.
    await page.goto('about:blank');
    await page.addInitScript(() => {
      sessionStorage.setItem('eye.auth', JSON.stringify({ kind: 'api_key', token: 'eye_bogus0000.bogus0000', label: 'bogus', expires_at: null }));
    });
    await page.goto(`${ui}#/catalogue`, { waitUntil: 'domcontentloaded' });
    try {
      await page.waitForSelector('[data-testid="signin-form"] [data-testid="signin-reason"]', { timeout: TIMEOUT_MS, state: 'visible' });
      out.signin.unauthorized_reason = (await page.$eval('[data-testid="signin-reason"]', (e) => e.textContent)) ?? '';
      out.signin.unauthorized_returns_to_signin = out.signin.unauthorized_reason.trim().length > 0;
    } catch {
      out.signin.unauthorized_returns_to_signin = false;
      log(`no sign-in reason within ${TIMEOUT_MS / 1000} s at ${page.url()}: ${(await page.evaluate(() => document.body?.innerText ?? '').catch(() => '')).slice(0, 300)}`);
    }
    await shot('unauthorized');

    for (const v of VIEWS) out.console_errors[v] ??= [];
    return out;
  } finally {
    await browser.close().catch(() => {});
  }
}

try {
  const input = readInput();
  const out = await run(input);
  process.stdout.write(`${JSON.stringify(out)}\n`);
} catch (e) {
  console.error(`explorer.mjs: could not drive the explorer: ${e instanceof DriveError ? e.message : (e?.stack ?? e)}`);
  process.exit(1);
}
