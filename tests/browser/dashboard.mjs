// Loads the consentgate admin dashboard in Debian's headless Chromium for tests/dashboard.rs.
// Usage: node dashboard.mjs ADMIN_URL SCREENSHOT_PATH PROXY_PORT
// Loads the page, reads what it shows, sends one request through the proxy, and waits for the
// page to show it by itself (its own refresh, no reload). Prints one JSON line: every value the
// page shows under a `data-k` key (as displayed text; `data-v` where set) before (`first`) and
// after that request (`values`), the rows of the top rules and top blocked hosts tables
// (`tables`: [text, count] per row), the console errors, CSP violations the page reported,
// requests that failed. Saves a full-page screenshot.
import { launch } from './launch.mjs';

const [url, screenshot, proxyPort] = process.argv.slice(2);
const browser = await launch();
try {
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  const consoleErrors = [];
  const failed = [];
  page.on('console', m => { if (m.type() === 'error' || m.type() === 'warning') consoleErrors.push(m.text()); });
  page.on('pageerror', e => consoleErrors.push(`pageerror: ${e.message}`));
  page.on('requestfailed', r => failed.push(`${r.url()}: ${r.failure()?.errorText}`));
  // Installed before the page's own script runs (through the DevTools protocol, not as page
  // content, so the page's CSP does not apply to it).
  await page.addInitScript(() => {
    window.__violations = [];
    document.addEventListener('securitypolicyviolation', e =>
      window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  await page.goto(url, { waitUntil: 'load' });
  await page.waitForSelector('body[data-generated-at]', { timeout: 10000 });
  const read = () => page.evaluate(() => {
    const out = {};
    for (const e of document.querySelectorAll('[data-k]')) {
      out[e.dataset.k] = e.dataset.v !== undefined ? e.dataset.v : e.textContent.trim();
    }
    // The top tables' rows: their keys are rules and hosts (no data-k; they are not metrics).
    const rows = id => [...document.querySelectorAll(`#${id} tbody tr`)]
      .filter(tr => !tr.querySelector('td.empty'))
      .map(tr => [...tr.querySelectorAll('td')].map(td => td.textContent));
    return {
      values: out,
      tables: { rules: rows('rules'), hosts: rows('hosts') },
      generatedAt: document.body.dataset.generatedAt,
      bars: document.querySelectorAll('#chart rect.bar').length,
      violations: window.__violations,
      error: document.getElementById('error').hidden ? null : document.getElementById('error').textContent,
    };
  });
  const first = await read();
  const before = Number(first.values['requests.total']);
  const r = await fetch(`http://127.0.0.1:${proxyPort}/page`);
  await r.text();
  // The page's own refresh (every 5 s) shows the new request.
  await page.waitForFunction(
    n => Number(document.querySelector('[data-k="requests.total"]').textContent) === n,
    before + 1, { timeout: 15000 });
  const shown = await read();
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ ...shown, first: first.values, consoleErrors, failed }));
} finally {
  await browser.close();
}
