// The viewer page in headless Chromium against a real carry-endpoint: links are made
// here as a patient's device makes them (relay sign-in, a JWE of an IPS Bundle, the
// owner API), then opened the way a clinician opens a QR code. The page is loaded
// from `localhost` while the links point at `127.0.0.1`, so every SHL request is
// cross-origin and goes through CORS, as with a viewer hosted elsewhere.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const puppeteer = require('puppeteer-core');

const h = require('./helpers');

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SCREENSHOT = path.resolve(process.env.CARRY_SCREENSHOT || path.join(h.REPO, 'target', 'viewer-ok.png'));
const PASSCODE = 'amber-fox-42';

let server;
let browser;
let token;
const bundleText = fs.readFileSync(h.shared('fixtures/fhir/hl7-examples/ips-Bundle-IPS-examples-Bundle-01.json'), 'utf8');
const bundle = JSON.parse(bundleText);

/** What the page must show, read from the fixture itself. */
function expected() {
  const resources = bundle.entry.map((e) => e.resource);
  const allergy = resources.find((r) => r.resourceType === 'AllergyIntolerance' && r.criticality === 'high');
  const medication = resources.find((r) => r.resourceType === 'Medication');
  const patient = resources.find((r) => r.resourceType === 'Patient');
  return {
    allergy: allergy.code.text || allergy.code.coding[0].display,
    medication: medication.code.text || medication.code.coding[0].display,
    patient: `${patient.name[0].given.join(' ')} ${patient.name[0].family}`,
  };
}

/** A link to the IPS Bundle: the owner API's answer and the `shlink:/` to open. */
async function makeLink({ flags = '', passcode, expiresAt, exp, label = 'Emergency summary', text = bundleText } = {}) {
  const key = h.newKey();
  const body = { file: h.encryptJwe(text, key), flags };
  if (passcode) body.passcode = passcode;
  if (expiresAt) body.expires_at = expiresAt;
  const r = await h.owner(server.base, token, 'POST', '/shl/v1/links', body);
  assert.equal(r.status, 201, JSON.stringify(r.body));
  const payload = { url: r.body.manifest_url, key, flag: flags || undefined, label };
  if (exp !== undefined) payload.exp = exp;
  return { id: r.body.id, key, shlink: h.shlink(payload) };
}

/** Open the viewer (from localhost) on a link; every request and console error is kept. */
async function open(shlink) {
  const page = await browser.newPage();
  await page.setViewport({ width: 412, height: 915, deviceScaleFactor: 1 });
  const requests = [];
  const problems = [];
  page.on('request', (req) => requests.push({ url: req.url(), method: req.method() }));
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(msg.text());
  });
  page.on('pageerror', (err) => problems.push(String(err)));
  await page.goto(`http://localhost:${server.port}/view#${shlink}`, { waitUntil: 'load' });
  return { page, requests, problems };
}

async function messageText(page) {
  await page.waitForSelector('#message', { timeout: 15000 });
  return page.$eval('#message', (el) => el.textContent);
}

/** The name and role a clinician types: the form asks, and fills in nothing. */
const CLINICIAN = 'Dr Test';
const ROLE = 'A&E';

async function submit(page, passcode) {
  await page.waitForSelector('#recipient');
  if (!(await page.$eval('#recipient', (el) => el.value))) {
    await page.type('#recipient', CLINICIAN);
    await page.type('#role', ROLE);
  }
  if (passcode !== undefined) {
    await page.waitForSelector('#passcode');
    await page.type('#passcode', passcode);
  }
  await page.click('#open');
}

/**
 * Every request went to the endpoint, and none carried the key or the payload (the
 * page's own URL holds them in its fragment, which a browser never sends; puppeteer
 * reports it, so it is cut off here).
 */
function onlyTheEndpoint(requests, key) {
  const hosts = new Set([`localhost:${server.port}`, `127.0.0.1:${server.port}`]);
  assert.ok(requests.length > 0);
  for (const r of requests) {
    const u = new URL(r.url);
    assert.ok(hosts.has(u.host) && u.protocol === 'http:', `a request left the endpoint: ${r.url}`);
    const sent = r.url.split('#')[0];
    assert.ok(!sent.includes(key), 'the key was sent');
    assert.ok(!sent.includes('shlink'), 'the payload was sent');
  }
}

before(async () => {
  server = await h.startEndpoint();
  token = await h.signIn(server.base);
  browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--no-first-run', '--no-default-browser-check'],
  });
});

after(async () => {
  if (browser) await browser.close();
  if (server) server.stop();
});

test('a passcode link opens: the allergy and the medicine are shown', { timeout: 60000 }, async () => {
  const want = expected();
  const link = await makeLink({ flags: 'P', passcode: PASSCODE, expiresAt: h.nowS() + 3600, exp: h.nowS() + 3600 });
  const { page, requests, problems } = await open(link.shlink);
  await submit(page, PASSCODE);
  await page.waitForSelector('#summary', { timeout: 20000 });
  const summary = await page.$eval('#summary', (el) => el.innerText);
  assert.ok(summary.includes(want.patient), summary);
  assert.ok(summary.includes(want.allergy), summary);
  assert.ok(summary.includes(want.medication), summary);
  assert.ok(summary.includes('High criticality'));
  assert.ok(summary.includes('1 May 1972'), 'the date of birth');
  assert.ok(summary.includes('Link expires'));
  // Allergies come first, right after the patient.
  const order = await page.$$eval('#summary > section', (els) => els.map((e) => e.className));
  assert.match(order[0], /patient/);
  assert.match(order[1], /allergies/);
  assert.match(order[2], /medications/);
  fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
  await page.screenshot({ path: SCREENSHOT, fullPage: true });

  // Only the page, its script and style, the manifest and the file were requested.
  onlyTheEndpoint(requests, link.key);
  const paths = requests.map((r) => `${r.method} ${new URL(r.url).pathname}`);
  assert.ok(paths.includes(`POST /shl/m/${link.id}`), paths.join('\n'));
  assert.ok(paths.some((p) => p.startsWith('GET /shl/f/')), paths.join('\n'));
  assert.deepEqual(problems, [], 'no console errors (CSP, CORS, scripts)');
  const log = await h.owner(server.base, token, 'GET', `/shl/v1/links/${link.id}/accesses`);
  assert.deepEqual(
    log.body.accesses.map((a) => [a.outcome, a.via, a.recipient]),
    [['ok', 'manifest', `${CLINICIAN}, ${ROLE}`]],
    'the manifest and the file fetched through its location are one opening'
  );
  await page.close();
});

test('a wrong passcode says how many attempts are left', { timeout: 60000 }, async () => {
  const link = await makeLink({ flags: 'P', passcode: PASSCODE });
  const { page, requests } = await open(link.shlink);
  await submit(page, 'not-the-passcode');
  const text = await messageText(page);
  assert.match(text, /Wrong passcode/);
  assert.match(text, /4 attempts left/);
  // The form stays for another try; the right passcode then works.
  await submit(page, PASSCODE);
  await page.waitForSelector('#summary', { timeout: 20000 });
  onlyTheEndpoint(requests, link.key);
  await page.close();
});

test('the clinician gives their name: nothing is fetched without it', { timeout: 60000 }, async () => {
  const link = await makeLink({ flags: 'P', passcode: PASSCODE });
  const { page, requests } = await open(link.shlink);
  await page.waitForSelector('#recipient');
  assert.equal(await page.$eval('#recipient', (el) => el.value), '', 'nothing is filled in for them');
  await page.type('#passcode', PASSCODE);
  await page.click('#open');
  assert.match(await messageText(page), /Enter your name/);
  assert.deepEqual(requests.filter((r) => r.url.includes('/shl/')), [], 'no request went out');
  await submit(page);
  await page.waitForSelector('#summary', { timeout: 20000 });
  await page.close();
});

test('an expired link says so', { timeout: 60000 }, async () => {
  const expires = h.nowS() + 2;
  // One link carries its expiry in the payload: the page needs no request to know.
  const known = await makeLink({ expiresAt: expires, exp: expires });
  // The other does not: the server's 404 is explained.
  const unknown = await makeLink({ expiresAt: expires });
  while (h.nowS() <= expires) await new Promise((r) => setTimeout(r, 200));

  const a = await open(known.shlink);
  assert.match(await messageText(a.page), /expired/);
  assert.deepEqual(
    a.requests.filter((r) => r.url.includes('/shl/')),
    [],
    'no request for a link known to have expired'
  );
  await a.page.close();

  const b = await open(unknown.shlink);
  await submit(b.page);
  const text = await messageText(b.page);
  assert.match(text, /no longer shared/);
  assert.match(text, /expired/);
  await b.page.close();
});

test('a revoked link is no longer shared', { timeout: 60000 }, async () => {
  const link = await makeLink({ flags: 'L' });
  const revoked = await h.owner(server.base, token, 'DELETE', `/shl/v1/links/${link.id}`);
  assert.equal(revoked.status, 204);
  const { page, requests } = await open(link.shlink);
  await submit(page);
  assert.match(await messageText(page), /no longer shared/);
  assert.equal(await page.$('#summary'), null);
  onlyTheEndpoint(requests, link.key);
  await page.close();
});

test('a U link is fetched directly, under the name the clinician gives', { timeout: 60000 }, async () => {
  const want = expected();
  const link = await makeLink({ flags: 'LU' });
  const { page, requests } = await open(link.shlink);
  await page.waitForSelector('#recipient');
  await page.$eval('#recipient', (el) => {
    el.value = '';
  });
  await page.type('#recipient', 'Dr Ada Okafor, A&E');
  await submit(page);
  await page.waitForSelector('#summary', { timeout: 20000 });
  assert.ok((await page.$eval('#summary', (el) => el.innerText)).includes(want.allergy));
  const shl = requests.filter((r) => r.url.includes('/shl/'));
  assert.deepEqual(shl.map((r) => r.method), ['GET']);
  assert.equal(new URL(shl[0].url).searchParams.get('recipient'), 'Dr Ada Okafor, A&E');
  const log = await h.owner(server.base, token, 'GET', `/shl/v1/links/${link.id}/accesses`);
  assert.deepEqual(log.body.accesses.map((a) => [a.outcome, a.via, a.recipient]), [['ok', 'direct', 'Dr Ada Okafor, A&E']]);
  await page.close();
});

test('a malformed link and a wrong key are explained', { timeout: 60000 }, async () => {
  const a = await open('shlink:/not-a-payload!');
  assert.match(await messageText(a.page), /malformed/);
  await a.page.close();

  const link = await makeLink({});
  const payload = JSON.parse(Buffer.from(link.shlink.slice('shlink:/'.length), 'base64url'));
  const wrongKey = h.shlink({ ...payload, key: h.newKey() });
  const b = await open(wrongKey);
  await submit(b.page);
  assert.match(await messageText(b.page), /could not be decrypted/);
  await b.page.close();
});

test('on a phone the patient header is above the fold, sections fold, key results are drawn, and axe finds nothing', { timeout: 90000 }, async () => {
  const text = JSON.stringify(h.withDocuments(h.withTrends(JSON.parse(bundleText))).bundle);
  const link = await makeLink({ flags: 'P', passcode: PASSCODE, expiresAt: h.nowS() + 3600, exp: h.nowS() + 3600, text });
  const { page, problems } = await open(link.shlink);
  await page.setViewport({ width: 390, height: 844, deviceScaleFactor: 1 });
  await submit(page, PASSCODE);
  await page.waitForSelector('#summary', { timeout: 20000 });
  // The header, whole, on the first screen of a 390x844 phone.
  const box = await page.$eval('#patient', (el) => {
    const r = el.getBoundingClientRect();
    return { top: r.top, bottom: r.bottom };
  });
  assert.ok(box.top >= 0 && box.bottom <= 844, `the header spans ${box.top}-${box.bottom}px`);
  await page.screenshot({ path: SCREENSHOT.replace(/\.png$/, '-phone.png') });
  // Each section folds and opens again; a jump bar links to each when there are many.
  const codes = await page.$$eval('#summary > section.section', (els) => els.map((e) => e.id));
  assert.ok(codes.length >= 3, codes.join(','));
  if (codes.length > 3) {
    const jumps = await page.$$eval('nav.jump a', (as) => as.map((a) => a.getAttribute('href')));
    assert.deepEqual(jumps, codes.map((c) => `#${c}`));
  }
  // Key results over time: a chart per result with two values or more, in words too.
  assert.equal(codes[codes.length - 1], 'key-results');
  const charts = await page.$$eval('#key-results svg.spark', (els) => els.map((e) => e.getAttribute('aria-label')));
  assert.ok(charts.length >= 3, charts.join('\n'));
  assert.ok(charts.some((c) => /^HbA1c: 4 values from 10 Nov 2017 to 30 Nov 2025, lowest 6.1, highest 7.5, latest 6.1 %$/.test(c)), charts.join('\n'));
  assert.ok(charts.some((c) => c === 'Blood pressure: 2 values from 1 Feb 2024 to 1 Jun 2025, systolic lowest 128, highest 142, latest 128/82 mmHg'), charts.join('\n'));
  // A document's file is saved from the summary itself, under a name from its title.
  const saves = await page.$$eval('a.download', (as) => as.map((a) => [a.getAttribute('download'), a.href.slice(0, 5)]));
  assert.deepEqual(saves, [['Clinic-letter.pdf', 'blob:']]);
  const trends = await page.$('#key-results');
  await trends.screenshot({ path: SCREENSHOT.replace(/\.png$/, '-trends.png') });
  await page.click(`#${codes[0]} summary`);
  assert.equal(await page.$eval(`#${codes[0]} details`, (d) => d.open), false);
  await page.click(`#${codes[0]} summary`);
  assert.equal(await page.$eval(`#${codes[0]} details`, (d) => d.open), true);
  // axe-core, evaluated through the DevTools protocol (the page's own policy allows
  // no script but its own, rightly).
  await page.evaluate(fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8'));
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } });
    return { passes: r.passes.length, violations: r.violations.map((v) => `${v.id}: ${v.help} (${v.nodes.length})`) };
  });
  assert.ok(result.passes > 10, `axe checked ${result.passes} rules`);
  assert.deepEqual(result.violations, [], result.violations.join('\n'));
  assert.deepEqual(problems.filter((p) => !/Content Security Policy/.test(p)), []);
  await page.close();
});
