// Shared by the viewer tests: where things are, a real carry-endpoint, the relay's
// sign-in with an Ed25519 key, SHL encryption (JWE dir/A256GCM with raw DEFLATE) and
// `shlink:/` payloads, all with node's own crypto and zlib.
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const zlib = require('node:zlib');
const { spawn } = require('node:child_process');

const REPO = path.resolve(__dirname, '..', '..');
const SHARED = path.resolve(process.env.SHARED || path.join(REPO, '..', 'shared'));
const ENDPOINT = path.resolve(process.env.CARRY_ENDPOINT_BIN || path.join(REPO, 'target', 'debug', 'carry-endpoint'));
const VIEWER_JS = path.join(REPO, 'endpoint', 'viewer', 'viewer.js');

function shared(rel) {
  return path.join(SHARED, rel);
}

function readJson(file) {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

function b64u(bytes) {
  return Buffer.from(bytes).toString('base64url');
}

/**
 * Start carry-endpoint on a fresh SQLite database in a temp dir; resolves to
 * `{base, port, stop()}` once it prints its address.
 */
function startEndpoint(extra = []) {
  if (!fs.existsSync(ENDPOINT)) {
    throw new Error(`no endpoint binary at ${ENDPOINT}: build it (cargo build -p carry-endpoint) or set CARRY_ENDPOINT_BIN`);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'carry-viewer-'));
  const child = spawn(
    ENDPOINT,
    ['serve', '--db', `sqlite://${path.join(dir, 'viewer.db')}`, '--listen', '127.0.0.1:0', ...extra],
    { env: { ...process.env, CARRY_LOG: 'warn' }, stdio: ['ignore', 'pipe', 'inherit'] }
  );
  const stop = () => {
    if (child.exitCode === null) child.kill('SIGTERM');
    fs.rmSync(dir, { recursive: true, force: true });
  };
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      stop();
      reject(new Error('the endpoint did not start within 20 s'));
    }, 20000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the endpoint exited with ${code}`));
    });
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const m = /listening on (http:\/\/127\.0\.0\.1:(\d+))/.exec(out);
      if (m) {
        clearTimeout(timer);
        child.removeAllListeners('exit');
        resolve({ base: m[1], port: Number(m[2]), stop });
      }
    });
  });
}

async function json(resp) {
  const text = await resp.text();
  try {
    return JSON.parse(text);
  } catch (e) {
    return { text };
  }
}

/** Sign in to the relay with a fresh Ed25519 key: the session token. */
async function signIn(base) {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ed25519');
  const key = publicKey.export({ format: 'jwk' }).x;
  const post = (p, body) =>
    fetch(`${base}${p}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const c = await json(await post('/relay/v1/challenge', { key }));
  // The signature names the endpoint's origin (here the base itself).
  const origin = new URL(base).origin;
  const message = Buffer.concat([Buffer.from(`carry-relay-auth-v2\n${origin}\n`), Buffer.from(c.challenge, 'base64url')]);
  const signature = b64u(crypto.sign(null, message, privateKey));
  const s = await post('/relay/v1/session', { key, challenge: c.challenge, signature });
  if (s.status !== 200) throw new Error(`sign-in failed: ${s.status}`);
  return (await json(s)).token;
}

/** `method` on the owner API with the session token: `{status, body}`. */
async function owner(base, token, method, p, body) {
  const resp = await fetch(`${base}${p}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: resp.status, body: resp.status === 204 ? null : await json(resp) };
}

/** A fresh 32-byte SHL key, base64url. */
function newKey() {
  return b64u(crypto.randomBytes(32));
}

/** Encrypt `plaintext` as SHL does: compact JWE, dir + A256GCM, raw DEFLATE. */
function encryptJwe(plaintext, keyB64u, { zip = true } = {}) {
  const header = { alg: 'dir', enc: 'A256GCM', cty: 'application/fhir+json' };
  if (zip) header.zip = 'DEF';
  const protectedHeader = b64u(Buffer.from(JSON.stringify(header)));
  const iv = crypto.randomBytes(12);
  const cipher = crypto.createCipheriv('aes-256-gcm', Buffer.from(keyB64u, 'base64url'), iv);
  cipher.setAAD(Buffer.from(protectedHeader, 'ascii'));
  const body = zip ? zlib.deflateRawSync(Buffer.from(plaintext)) : Buffer.from(plaintext);
  const ciphertext = Buffer.concat([cipher.update(body), cipher.final()]);
  return [protectedHeader, '', b64u(iv), b64u(ciphertext), b64u(cipher.getAuthTag())].join('.');
}

/** A `shlink:/` URI for a payload. */
function shlink(payload) {
  return `shlink:/${b64u(Buffer.from(JSON.stringify(payload)))}`;
}

function nowS() {
  return Math.floor(Date.now() / 1000);
}

/**
 * `bundle` (an IPS document) with results over time added to its results section:
 * four HbA1c values (one held by two sources, one entered in error), two blood
 * pressures as panels, and glucose in mmol/L with one in mg/dL.
 */
function withTrends(bundle) {
  const loinc = (code, display) => ({ coding: [{ system: 'http://loinc.org', code, display }] });
  const q = (value, unit, code) => ({ value, unit, system: 'http://unitsofmeasure.org', code: code || unit });
  const added = [
    ['a1', '2021-03-02', { code: loinc('4548-4', 'Hemoglobin A1c'), valueQuantity: q(6.8, '%') }],
    ['a2', '2023-05-10', { code: loinc('4548-4', 'Hemoglobin A1c'), valueQuantity: q(6.4, '%') }],
    ['a2b', '2023-05-10', { code: loinc('4548-4', 'Hemoglobin A1c'), valueQuantity: q(6.4, '%') }],
    ['a3', '2024-01-20', { code: loinc('4548-4', 'Hemoglobin A1c'), valueQuantity: q(9.9, '%'), status: 'entered-in-error' }],
    ['a4', '2025-11-30', { code: loinc('4548-4', 'Hemoglobin A1c'), valueQuantity: q(6.1, '%') }],
    ['b1', '2024-02-01', { code: loinc('85354-9', 'Blood pressure panel'), component: [
      { code: loinc('8480-6', 'Systolic'), valueQuantity: q(142, 'mmHg', 'mm[Hg]') },
      { code: loinc('8462-4', 'Diastolic'), valueQuantity: q(91, 'mmHg', 'mm[Hg]') }] }],
    ['b2', '2025-06-01', { code: loinc('85354-9', 'Blood pressure panel'), component: [
      { code: loinc('8480-6', 'Systolic'), valueQuantity: q(128, 'mmHg', 'mm[Hg]') },
      { code: loinc('8462-4', 'Diastolic'), valueQuantity: q(82, 'mmHg', 'mm[Hg]') }] }],
    ['g1', '2022-01-01', { code: loinc('2345-7', 'Glucose'), valueQuantity: q(110, 'mg/dL') }],
    ['g2', '2024-01-01', { code: loinc('2345-7', 'Glucose'), valueQuantity: q(5.9, 'mmol/L') }],
    ['g3', '2025-01-01', { code: loinc('2345-7', 'Glucose'), valueQuantity: q(6.2, 'mmol/L') }],
  ];
  const patient = bundle.entry.find((e) => e.resource.resourceType === 'Patient');
  const results = bundle.entry[0].resource.section.find((s) =>
    (s.code.coding || []).some((c) => c.code === '30954-2'));
  for (const [id, date, fields] of added) {
    const fullUrl = `urn:uuid:00000000-0000-4000-8000-0000000000${id.padStart(2, '0').slice(-2)}${id.length}`;
    bundle.entry.push({ fullUrl, resource: {
      resourceType: 'Observation', id: `trend-${id}`, status: 'final',
      subject: { reference: patient.fullUrl }, effectiveDateTime: date, ...fields } });
    results.entry = (results.entry || []).concat([{ reference: fullUrl }]);
  }
  return bundle;
}

/**
 * `bundle` with a documents section (Carry's own section code) holding two letters:
 * one with its file inside (a small PDF), one left out of the summary for its size.
 */
function withDocuments(bundle) {
  const pdf = Buffer.from('%PDF-1.4\n% a letter\n%%EOF\n');
  const patient = bundle.entry.find((e) => e.resource.resourceType === 'Patient');
  const docs = [
    ['urn:uuid:00000000-0000-4000-8000-00000000d0c1', { description: 'Clinic letter', date: '2026-11-30T10:00:00Z',
      content: [{ attachment: { contentType: 'application/pdf', data: pdf.toString('base64'), size: pdf.length } }] }],
    ['urn:uuid:00000000-0000-4000-8000-00000000d0c2', { description: 'Hospital scan', date: '2026-10-01T10:00:00Z',
      content: [{ attachment: { contentType: 'application/pdf', size: 3500000 } }] }],
  ];
  for (const [fullUrl, fields] of docs) {
    bundle.entry.push({ fullUrl, resource: { resourceType: 'DocumentReference', status: 'current',
      subject: { reference: patient.fullUrl }, ...fields } });
  }
  bundle.entry[0].resource.section.push({
    title: 'Documents',
    code: { coding: [{ system: 'https://carry.health/fhir/CodeSystem/summary-section', code: 'documents', display: 'Documents' }] },
    text: { status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml"><ul><li>Clinic letter</li><li>Hospital scan</li></ul></div>' },
    entry: docs.map(([reference]) => ({ reference })),
  });
  return { bundle, pdf };
}

module.exports = {
  withDocuments,
  withTrends,
  REPO,
  SHARED,
  ENDPOINT,
  VIEWER_JS,
  shared,
  readJson,
  b64u,
  startEndpoint,
  signIn,
  owner,
  newKey,
  encryptJwe,
  shlink,
  nowS,
};
