// Loads one page through consentgate in Debian's headless Chromium for tests/browser.rs and
// times it: a page whose body Chromium cannot see the end of (an `HTTP/1.0` response with
// chunks) loads only when the connection closes. Usage: node page_load.mjs PROXY_PORT TIMEOUT_MS
// The navigation gives up after TIMEOUT_MS, which fails the driver (a hang fails the test rather
// than passing slowly). Prints one JSON line: the milliseconds until the page's load event, the
// page's dataLayer entries (each `arguments` as an array) and whether its external script ran.
import { launch } from './launch.mjs';

const [proxyPort, timeoutMs] = process.argv.slice(2);
const browser = await launch(['--host-resolver-rules=MAP site.test 127.0.0.1']);
try {
  const page = await (await browser.newContext()).newPage();
  const started = Date.now();
  await page.goto(`http://site.test:${proxyPort}/`, { waitUntil: 'load', timeout: Number(timeoutMs) });
  const loadMs = Date.now() - started;
  const out = await page.evaluate(() => ({
    dataLayer: (window.dataLayer || []).map((a) => Array.from(a)),
    appRan: window.__appRan === true,
  }));
  out.loadMs = loadMs;
  console.log(JSON.stringify(out));
} finally {
  await browser.close();
}
