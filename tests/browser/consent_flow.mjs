// Drives Debian's headless Chromium through a consent flow for tests/browser.rs.
// Usage: node consent_flow.mjs PROXY_PORT TRACKER_PORT [https SPKI_SHA256_BASE64]
// Prints one JSON line: what the page saw before and after granting analytics consent, how
// many requests the tracker host had received at each point, and the protocol of the page.
// With `https`, the site is opened over HTTPS; the proxy's test certificate is accepted by its
// public key hash only (--ignore-certificate-errors-spki-list), every other certificate check
// stays on.
import { launch } from './launch.mjs';

const [proxyPort, trackerPort, scheme = 'http', spki] = process.argv.slice(2);
const tlsArgs = scheme === 'https'
  ? [`--ignore-certificate-errors-spki-list=${spki}`,
     // The third-party tracker is a plain-HTTP test server: without this the HTTPS page's
     // browser would block it as mixed content, consent or not.
     '--allow-running-insecure-content']
  : [];
const trackerCount = async () =>
  (await (await fetch(`http://127.0.0.1:${trackerPort}/__count`)).json()).count;

const browser = await launch([
  // Two "hosts" on loopback: the site (through consentgate) and a third-party tracker.
  '--host-resolver-rules=MAP site.test 127.0.0.1, MAP tracker.test 127.0.0.1',
  ...tlsArgs,
]);
try {
  const page = await (await browser.newContext()).newPage();
  const url = `${scheme}://site.test:${proxyPort}/`;
  await page.goto(url, { waitUntil: 'load' });
  // Give any tracker the page might still load a moment to do so.
  await page.waitForTimeout(500);
  const before = {
    cookies: await page.evaluate(() => document.cookie),
    trackerRan: await page.evaluate(() => window.__trackerLoaded === true),
    inlineRan: await page.evaluate(() => window.__inlineRan === true),
    scriptType: await page.evaluate(() => document.getElementById('tracker')?.getAttribute('type')),
    trackerRequests: await trackerCount(),
    protocol: await page.evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol),
  };
  // The page's consent banner grants analytics (writes the consent cookie and reloads).
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('#accept-analytics')]);
  // The next navigation.
  await page.goto(url, { waitUntil: 'load' });
  await page.waitForFunction(() => window.__trackerLoaded === true, null, { timeout: 5000 }).catch(() => {});
  const after = {
    cookies: await page.evaluate(() => document.cookie),
    trackerRan: await page.evaluate(() => window.__trackerLoaded === true),
    inlineRan: await page.evaluate(() => window.__inlineRan === true),
    trackerRequests: await trackerCount(),
  };
  console.log(JSON.stringify({ before, after }));
} finally {
  await browser.close();
}
