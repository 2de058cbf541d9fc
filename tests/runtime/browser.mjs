// Headless Chromium for browser tests: Debian's /usr/bin/chromium driven by playwright-core,
// which never downloads a browser of its own. The flags keep Chromium off the network (this
// machine's is closed; only 127.0.0.1 is used) and Playwright gives each launch a fresh,
// empty profile.
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { CHROMIUM } from '../tools/toolchain.mjs';

const ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Why the browser test cannot run here, or null when it can. */
export function browserMissing() {
  return existsSync(CHROMIUM)
    ? null
    : `${CHROMIUM} is missing (Debian package chromium; npm test installs it with apt when it can)`;
}

export async function launchBrowser() {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS, timeout: 30_000 });
}
