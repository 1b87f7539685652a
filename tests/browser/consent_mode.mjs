// Loads one page through consentgate in Debian's headless Chromium for tests/browser.rs
// (issue 11, Google Consent Mode v2). Usage: node consent_mode.mjs PROXY_PORT
// Prints one JSON line: the page's dataLayer entries (each `arguments` as an array), what the
// page's own first script saw of dataLayer when it ran, every Content-Security-Policy
// violation the page reported (securitypolicyviolation events and console messages), and the
// charset the page was decoded in.
import { launch } from './launch.mjs';

const [proxyPort] = process.argv.slice(2);
const browser = await launch(['--host-resolver-rules=MAP site.test 127.0.0.1']);
try {
  const page = await (await browser.newContext()).newPage();
  const console_ = [];
  page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) console_.push(m.text()); });
  // Injected by the browser itself, before any script of the page and outside its CSP.
  await page.addInitScript(() => {
    window.__violations = [];
    document.addEventListener('securitypolicyviolation',
      (e) => window.__violations.push(`${e.effectiveDirective} ${e.blockedURI}`));
  });
  await page.goto(`http://site.test:${proxyPort}/`, { waitUntil: 'load' });
  await page.waitForTimeout(200);
  const out = await page.evaluate(() => ({
    dataLayer: (window.dataLayer || []).map((a) => Array.from(a)),
    seenByFirstScript: window.__seenByFirstScript ?? null,
    inlineRan: window.__inlineRan === true,
    violations: window.__violations,
    characterSet: document.characterSet,
  }));
  out.consoleViolations = console_;
  console.log(JSON.stringify(out));
} finally {
  await browser.close();
}
