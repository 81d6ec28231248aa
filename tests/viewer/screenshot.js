// Opens a share link in the endpoint's web viewer in headless Chromium, the way a
// clinician's phone does: types the passcode, waits for the summary, checks that the
// expected words appear, and saves a screenshot. Used by the demo.
//
// Usage: node screenshot.js LINK PASSCODE OUT.png [WORD…]
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const puppeteer = require('puppeteer-core');

async function main() {
  const [link, passcode, out, ...words] = process.argv.slice(2);
  if (!link || !out) throw new Error('usage: node screenshot.js LINK PASSCODE OUT.png [WORD…]');
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--no-first-run', '--no-default-browser-check'],
  });
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 412, height: 915, deviceScaleFactor: 1 });
    await page.goto(link, { waitUntil: 'load' });
    await page.waitForSelector('#recipient', { timeout: 15000 });
    await page.type('#recipient', 'Dr Screenshot');
    if (passcode) {
      await page.waitForSelector('#passcode', { timeout: 15000 });
      await page.type('#passcode', passcode);
    }
    await page.click('#open');
    await page.waitForSelector('#summary', { timeout: 20000 });
    const text = await page.$eval('#summary', (el) => el.innerText);
    for (const w of words) {
      if (!text.includes(w)) throw new Error(`the summary does not show '${w}'`);
    }
    fs.mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
    await page.screenshot({ path: out, fullPage: true });
    console.log(`The viewer shows the summary (${words.join(', ') || 'no words checked'}); screenshot: ${out}`);
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  console.error(`viewer: ${e.message}`);
  process.exit(1);
});
