// Starts Debian's headless Chromium (or $CHROMIUM) for the drivers of this directory, with the
// flags this machine's closed network needs (no background connections, no QUIC) plus `extra`.
import { chromium } from 'playwright-core';

export function launch(extra = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      ...extra,
    ],
  });
}
