// Loads pages through consentgate in Debian's headless Chromium for tests/browser.rs (issue 11,
// second audit: `[site.csp]` on pages whose own CSP allows scripts by a nonce).
// Usage: node csp_nonce.mjs PROXY_PORT CONSENT PATH...  (CONSENT: the `consent` cookie's value,
// or `-` for none). Each PATH is loaded in a fresh browser context. Prints one JSON line, per
// PATH: the page's dataLayer entries, the names the page's scripts recorded in `window.__ran`
// as they ran, and every Content-Security-Policy violation the page reported
// (securitypolicyviolation events, and console messages about a policy).
import { launch } from './launch.mjs';

const [proxyPort, consent, ...paths] = process.argv.slice(2);
const browser = await launch([
  // Two "hosts" on loopback: the site (through consentgate) and a third-party tracker.
  '--host-resolver-rules=MAP site.test 127.0.0.1, MAP tracker.test 127.0.0.1',
]);
const origin = `http://site.test:${proxyPort}`;
const out = {};
try {
  for (const path of paths) {
    const context = await browser.newContext();
    if (consent !== '-') {
      await context.addCookies([{ name: 'consent', value: consent, url: origin }]);
    }
    const page = await context.newPage();
    const console_ = [];
    page.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) console_.push(m.text());
    });
    // Injected by the browser itself, before any script of the page and outside its CSP.
    await page.addInitScript(() => {
      window.__ran = [];
      window.__violations = [];
      document.addEventListener('securitypolicyviolation',
        (e) => window.__violations.push(`${e.effectiveDirective} ${e.blockedURI}`));
    });
    await page.goto(`${origin}${path}`, { waitUntil: 'load' });
    // Scripts the page inserts load after `load` may have fired.
    await page.waitForTimeout(300);
    const seen = await page.evaluate(() => ({
      dataLayer: (window.dataLayer || []).map((a) => Array.from(a)),
      ran: window.__ran,
      violations: window.__violations,
    }));
    seen.consoleViolations = console_;
    out[path] = seen;
    await context.close();
  }
  console.log(JSON.stringify(out));
} finally {
  await browser.close();
}
