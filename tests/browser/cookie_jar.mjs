// What Chromium's cookie jar holds after loading pages, for tests/browser.rs: the browser, not
// consentgate's parser, decides which cookie each Set-Cookie line sets.
// Usage: node cookie_jar.mjs PORT PAGES [NAME=VALUE]
// Loads http://site.test:PORT/p/0 .. /p/(PAGES-1), each in a fresh browser context (an empty
// jar, or one holding only the cookie NAME=VALUE, e.g. a consent cookie), and prints one JSON
// line: for each page, the [name, value] pairs the jar then holds.
import { launch } from './launch.mjs';

const [port, pages, preset] = process.argv.slice(2);
const browser = await launch(['--host-resolver-rules=MAP site.test 127.0.0.1']);
try {
  const jars = [];
  for (let i = 0; i < Number(pages); i++) {
    const context = await browser.newContext();
    if (preset) {
      const at = preset.indexOf('=');
      await context.addCookies([{
        name: preset.slice(0, at), value: preset.slice(at + 1), url: `http://site.test:${port}/`,
      }]);
    }
    const page = await context.newPage();
    const resp = await page.goto(`http://site.test:${port}/p/${i}`);
    if (!resp || resp.status() !== 200) throw new Error(`page ${i}: status ${resp && resp.status()}`);
    jars.push((await context.cookies()).map((c) => [c.name, c.value]));
    await context.close();
  }
  console.log(JSON.stringify(jars));
} finally {
  await browser.close();
}
