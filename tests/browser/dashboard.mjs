// Loads the consentgate admin dashboard in Debian's headless Chromium for tests/dashboard.rs.
// Usage: node dashboard.mjs ADMIN_URL SCREENSHOT_PATH
// Prints one JSON line: every value the page shows under a `data-k` key (as displayed text;
// `data-v` too where set), the console errors, CSP violations the page reported, requests
// that failed, and the page's `generatedAt` stamp. Saves a full-page screenshot.
import { chromium } from 'playwright-core';

const [url, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
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
  const shown = await page.evaluate(() => {
    const out = {};
    for (const e of document.querySelectorAll('[data-k]')) {
      out[e.dataset.k] = e.dataset.v !== undefined ? e.dataset.v : e.textContent.trim();
    }
    return {
      values: out,
      generatedAt: document.body.dataset.generatedAt,
      bars: document.querySelectorAll('#chart rect.bar').length,
      violations: window.__violations,
      error: document.getElementById('error').hidden ? null : document.getElementById('error').textContent,
    };
  });
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ ...shown, consoleErrors, failed }));
} finally {
  await browser.close();
}
