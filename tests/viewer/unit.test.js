// The viewer's logic in node, loaded from the very file the endpoint serves: JWE
// decryption against the HL7 IG's vectors, `shlink:/` parsing, the protocol client
// against a fake server, and the summary it draws from an IPS Bundle.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const zlib = require('node:zlib');
const { webcrypto } = require('node:crypto');

const h = require('./helpers');
const viewer = require(h.VIEWER_JS);

const deps = { subtle: webcrypto.subtle, inflateRaw: async (bytes) => new Uint8Array(zlib.inflateRawSync(bytes)) };
const text = (bytes) => new TextDecoder().decode(bytes);
const ipsBundle = () => h.readJson(h.shared('fixtures/fhir/hl7-examples/ips-Bundle-IPS-examples-Bundle-01.json'));

test('decrypts the HL7 IPS vector with the key from its SHL details', async () => {
  const jwe = fs.readFileSync(h.shared('fixtures/shl/ips-file.jwe.txt'), 'utf8');
  const details = h.readJson(h.shared('fixtures/shl/ips-shl-details.json'));
  const { header, plaintext } = await viewer.decryptJwe(jwe, details.shlinkJsonPayload.key, deps);
  assert.equal(header.alg, 'dir');
  assert.equal(header.enc, 'A256GCM');
  assert.ok(header.kid, 'extra header fields are tolerated');
  assert.deepEqual(JSON.parse(text(plaintext)), h.readJson(h.shared('fixtures/shl/ips-file-plaintext.json')));
});

test('decrypts the spec example vector byte for byte', async () => {
  const v = h.readJson(h.shared('fixtures/shl/spec-shl-example-vector.json'));
  const { header, plaintext } = await viewer.decryptJwe(v.fileEncryptedJwe, v.fileEncryptionKey, deps);
  assert.equal(header.cty, 'application/smart-health-card');
  const expected = fs.readFileSync(h.shared('fixtures/shl/shc-example-00-e-file.smart-health-card'));
  assert.deepEqual(Buffer.from(plaintext), expected);
});

test('inflates zip DEF files, with DecompressionStream where node has deflate-raw', async (t) => {
  const key = h.newKey();
  const bundle = JSON.stringify(ipsBundle());
  const jwe = h.encryptJwe(bundle, key);
  const viaZlib = await viewer.decryptJwe(jwe, key, deps);
  assert.equal(text(viaZlib.plaintext), bundle);
  let native = true;
  try {
    new DecompressionStream('deflate-raw');
  } catch (e) {
    native = false;
  }
  if (!native) {
    t.diagnostic('this node has no deflate-raw DecompressionStream; the browser test covers it');
    return;
  }
  const viaStream = await viewer.decryptJwe(jwe, key, { subtle: webcrypto.subtle });
  assert.equal(text(viaStream.plaintext), bundle);
});

test('refuses other algorithms, wrong keys and tampering', async () => {
  const key = h.newKey();
  const jwe = h.encryptJwe('{"a":1}', key, { zip: false });
  const kind = async (promise) => {
    try {
      await promise;
    } catch (e) {
      return e.kind;
    }
    return 'no error';
  };
  assert.equal(await kind(viewer.decryptJwe(jwe, h.newKey(), deps)), 'decrypt');
  const [head, ...rest] = jwe.split('.');
  const otherHeader = h.b64u(Buffer.from(JSON.stringify({ alg: 'dir', enc: 'A128GCM' })));
  assert.equal(await kind(viewer.decryptJwe([otherHeader, ...rest].join('.'), key, deps)), 'format');
  const kw = h.b64u(Buffer.from(JSON.stringify({ alg: 'A256KW', enc: 'A256GCM' })));
  assert.equal(await kind(viewer.decryptJwe([kw, ...rest].join('.'), key, deps)), 'format');
  // The same header with extra spaces: other AAD, so the tag fails.
  const spaced = h.b64u(Buffer.from(JSON.stringify({ alg: 'dir', enc: 'A256GCM', cty: 'application/fhir+json' }, null, 1)));
  assert.equal(await kind(viewer.decryptJwe([spaced, ...rest].join('.'), key, deps)), 'decrypt');
  const flipped = rest.slice();
  flipped[2] = flipped[2].startsWith('A') ? `B${flipped[2].slice(1)}` : `A${flipped[2].slice(1)}`;
  assert.equal(await kind(viewer.decryptJwe([head, ...flipped].join('.'), key, deps)), 'decrypt');
  assert.equal(await kind(viewer.decryptJwe('a.b.c', key, deps)), 'format');
  assert.deepEqual(JSON.parse(text((await viewer.decryptJwe(jwe, key, deps)).plaintext)), { a: 1 });
});

test('parses shlink payloads, behind a viewer prefix or bare, and refuses bad ones', () => {
  const details = h.readJson(h.shared('fixtures/shl/ips-shl-details.json'));
  const withViewer = fs.readFileSync(h.shared('fixtures/shl/ips-shl.txt'), 'utf8').trim();
  const link = viewer.parseShlink(new URL(withViewer).hash);
  assert.equal(link.url, details.shlinkJsonPayload.url);
  assert.equal(link.key, details.shlinkJsonPayload.key);
  assert.equal(link.flag, 'LU');
  assert.equal(link.label, 'Demo SHL for IPS_IG-bundle-01');
  const vector = h.readJson(h.shared('fixtures/shl/spec-shl-example-vector.json'));
  assert.equal(viewer.parseShlink(vector.shlinkWithViewer).flag, 'LP');
  assert.equal(viewer.parseShlink(`#${vector.shlinkBare}`).label, 'Back-to-school immunizations for Oliver Brown');

  const kind = (hash) => {
    try {
      viewer.parseShlink(hash);
    } catch (e) {
      return e.kind;
    }
    return 'ok';
  };
  const good = { url: 'https://h.example/shl/m/x', key: h.newKey() };
  assert.equal(kind(`#${h.shlink(good)}`), 'ok');
  assert.equal(kind(`#${h.shlink({ ...good, v: 1 })}`), 'ok');
  assert.equal(kind(`#${h.shlink({ ...good, v: 2 })}`), 'version');
  assert.equal(kind(''), 'malformed');
  assert.equal(kind('#shlink:/!!!'), 'malformed');
  assert.equal(kind(`#shlink:/${h.b64u(Buffer.from('[1,2]'))}`), 'malformed');
  assert.equal(kind(`#${h.shlink({ ...good, key: 'short' })}`), 'malformed');
  assert.equal(kind(`#${h.shlink({ ...good, url: 'javascript:alert(1)' })}`), 'malformed');
  assert.equal(kind(`#${h.shlink({ ...good, flag: 5 })}`), 'malformed');
  // The spec's own non-conformant payload: exp as a string of milliseconds.
  const bad = h.readJson(h.shared('fixtures/shl/spec-shl-payload-1-nonconformant.json'));
  assert.equal(kind(`#${h.shlink(bad)}`), 'malformed');
  assert.ok(viewer.isExpired({ exp: 10 }, 10_000));
  assert.ok(!viewer.isExpired({ exp: 11 }, 10_000));
  assert.ok(!viewer.isExpired({}, 10_000));
});

/** A fake SHL server: `routes[method + ' ' + url]` answers `{status, body}`. */
function fakeFetch(routes, seen) {
  return async (url, init) => {
    seen.push({ url, init });
    const r = routes[`${init.method} ${url}`] || { status: 404, body: { error: 'no' } };
    const body = typeof r.body === 'string' ? r.body : JSON.stringify(r.body);
    return new Response(body, { status: r.status });
  };
}

test('speaks the protocol: manifest, location, embedded, direct, 401 and 404', async () => {
  const m = 'https://h.example/shl/m/abc';
  const seen = [];
  const routes = {
    [`POST ${m}`]: { status: 200, body: { files: [{ contentType: 'application/fhir+json', location: 'https://h.example/shl/f/t' }] } },
    'GET https://h.example/shl/f/t': { status: 200, body: 'JWE-BY-LOCATION\n' },
  };
  const link = { url: m, key: h.newKey(), flag: 'P' };
  const got = await viewer.retrieve(link, { recipient: 'Dr V', passcode: '1234' }, fakeFetch(routes, seen));
  assert.equal(got, 'JWE-BY-LOCATION');
  assert.equal(seen.length, 2);
  assert.deepEqual(JSON.parse(seen[0].init.body), { recipient: 'Dr V', passcode: '1234' });
  assert.equal(seen[0].init.headers['Content-Type'], 'application/json');
  assert.equal(seen[0].init.credentials, 'omit');
  assert.equal(seen[1].init.method, 'GET');

  routes[`POST ${m}`] = { status: 200, body: { files: [{ contentType: 'application/fhir+json', embedded: 'JWE-EMBEDDED' }] } };
  assert.equal(await viewer.retrieve({ ...link, flag: '' }, {}, fakeFetch(routes, [])), 'JWE-EMBEDDED');

  routes[`POST ${m}`] = { status: 401, body: { remainingAttempts: 3 } };
  await assert.rejects(viewer.retrieve(link, { passcode: 'x' }, fakeFetch(routes, [])), (e) => e.kind === 'passcode' && e.extra.remaining === 3);
  assert.equal(viewer.messageFor({ kind: 'passcode', extra: { remaining: 3 } }, link, {}), 'Wrong passcode. 3 attempts left.');
  assert.equal(viewer.messageFor({ kind: 'passcode', extra: { remaining: 1 } }, link, {}), 'Wrong passcode. 1 attempt left.');
  assert.match(viewer.messageFor({ kind: 'passcode', extra: { remaining: 0 } }, link, {}), /locked/);
  routes[`POST ${m}`] = { status: 404, body: { error: 'gone' } };
  await assert.rejects(viewer.retrieve(link, { passcode: 'x' }, fakeFetch(routes, [])), (e) => e.kind === 'gone');
  assert.match(viewer.messageFor({ kind: 'gone', extra: {} }, link, {}), /no longer shared/);
  assert.match(viewer.messageFor({ kind: 'gone', extra: {} }, link, { lockedHere: true }), /locked/);

  const direct = [];
  const u = { url: m, key: h.newKey(), flag: 'LU' };
  routes[`GET ${m}?recipient=Dr+U`] = { status: 200, body: 'JWE-DIRECT' };
  assert.equal(await viewer.retrieve(u, { recipient: 'Dr U' }, fakeFetch(routes, direct)), 'JWE-DIRECT');
  assert.equal(direct.length, 1);
  // A name the endpoint would refuse goes as one plain line.
  assert.equal(viewer.plainRecipient('Dr\tA\r\nB \u202eC\u001b[0m'), 'Dr A B C [0m');
  assert.equal(viewer.plainRecipient('é'.repeat(300)).length, 200);
  assert.equal(viewer.plainRecipient(undefined), '');
  // No name given: the default recipient.
  const anon = [];
  await assert.rejects(viewer.retrieve(u, {}, fakeFetch(routes, anon)), (e) => e.kind === 'gone');
  assert.equal(new URL(anon[0].url).searchParams.get('recipient'), viewer.DEFAULT_RECIPIENT);
});

test('summarises the IPS example: patient, then allergies first, medications next', () => {
  const model = viewer.summarise(ipsBundle());
  assert.equal(model.patient.name, 'Martha DeLarosa');
  assert.equal(model.patient.birthDate, '1972-05-01');
  assert.equal(model.date, '2017-12-11T14:30:00+01:00');
  const codes = model.sections.map((s) => s.code);
  assert.deepEqual(codes.slice(0, 4), ['48765-2', '10160-0', '11450-4', '30954-2']);
  const allergies = model.sections[0];
  assert.equal(allergies.kind, 'allergies');
  assert.match(allergies.entries[0].text, /penicillin/);
  assert.equal(allergies.entries[0].flag, 'High criticality');
  assert.ok(allergies.entries[0].details.includes('Criticality: high'));
  assert.equal(allergies.entries[1].text, 'No known food allergy (situation)');
  const meds = model.sections[1].entries.map((e) => e.text);
  assert.deepEqual(meds, ['Product containing anastrozole (medicinal product)', 'Black Cohosh Extract herbal supplement']);
  assert.ok(model.sections[1].entries[0].details.some((d) => d.includes('1 tablet')));
  const results = model.sections[3].entries;
  assert.ok(results.some((e) => e.details.includes('7.5 %')), JSON.stringify(results));
  assert.ok(results[0].details.includes('ABO and Rh group [Type] in Blood: Blood group A Rh(D) positive'));
  // A section without entries falls back to its narrative, as text.
  const plan = model.sections.find((s) => s.code === '18776-5');
  assert.deepEqual(plan.entries, []);
  assert.match(plan.narrative[0], /Anastrozole/);
  assert.equal(viewer.formatDate('1972-05-01'), '1 May 1972');
  assert.equal(viewer.formatDate('2015-03'), 'Mar 2015');
  assert.equal(viewer.formatDate('2017-12-11T14:30:00+01:00'), '11 Dec 2017, 14:30');
});

test('empty sections show their reason; NHS numbers are found and spaced', () => {
  const noInfo = viewer.summarise(h.readJson(h.shared('fixtures/fhir/hl7-examples/ips-Bundle-bundle-no-info-required-sections.json')));
  assert.deepEqual(noInfo.sections.slice(0, 2).map((s) => s.code), ['48765-2', '10160-0']);
  assert.equal(noInfo.sections[0].empty, 'No information available');
  const imms = noInfo.sections.find((s) => s.code === '11369-6');
  assert.equal(imms.entries.length, 2, 'relative references resolve');

  const patient = h.readJson(h.shared('fixtures/fhir/uk-core/UKCore-Patient-RichardSmith-Example.json'));
  const bundle = {
    resourceType: 'Bundle',
    type: 'document',
    entry: [
      {
        fullUrl: 'urn:uuid:c',
        resource: {
          resourceType: 'Composition',
          subject: { reference: `Patient/${patient.id}` },
          section: [{ title: 'Vital signs', code: { coding: [{ system: 'http://loinc.org', code: '8716-3' }] } }],
        },
      },
      { fullUrl: `https://x.example/fhir/Patient/${patient.id}`, resource: patient },
    ],
  };
  const model = viewer.summarise(bundle);
  assert.equal(model.patient.nhsNumber, '991 200 3888');
  assert.equal(model.patient.name, 'Richard SMITH');
  assert.equal(model.sections[0].empty, 'No information');
  assert.throws(() => viewer.summarise({ resourceType: 'Bundle', type: 'collection' }), (e) => e.kind === 'content');
});

test('narratives become plain text lines, never markup', () => {
  const lines = viewer.narrativeText(
    '<div xmlns="http://www.w3.org/1999/xhtml"><script>alert(1)</script><p>Hi &amp; <b>there</b> &lt;img src=x onerror=alert(2)&gt;</p>' +
      '<table><tr><td>Anastrozole</td><td>1 mg</td><td/></tr></table></div>'
  );
  assert.deepEqual(lines, ['Hi & there <img src=x onerror=alert(2)>', 'Anastrozole · 1 mg']);
});

test('home readings say who entered them: the patient, or a carer by name', () => {
  const obs = (id, performer) => ({
    fullUrl: `urn:uuid:${id}`,
    resource: {
      resourceType: 'Observation',
      id,
      status: 'final',
      code: { text: 'Pulse' },
      subject: { reference: 'Patient/p1' },
      performer: [performer],
      valueQuantity: { value: 64, unit: '/min' },
    },
  });
  // A reading whose performer is a name only says who entered it by its tag.
  const tagged = obs('e', { display: 'Jene' });
  tagged.resource.meta = { tag: [{ system: 'https://carry.health/fhir/CodeSystem/entered-by', code: 'patient' }] };
  const bundle = {
    resourceType: 'Bundle',
    type: 'document',
    entry: [
      {
        fullUrl: 'urn:uuid:c',
        resource: {
          resourceType: 'Composition',
          subject: { reference: 'Patient/p1' },
          section: [
            {
              title: 'Vital signs',
              code: { coding: [{ system: 'http://loinc.org', code: '8716-3' }] },
              entry: [
                { reference: 'urn:uuid:a' },
                { reference: 'urn:uuid:b' },
                { reference: 'urn:uuid:d' },
                { reference: 'urn:uuid:e' },
              ],
            },
          ],
        },
      },
      { fullUrl: 'urn:uuid:p', resource: { resourceType: 'Patient', id: 'p1', name: [{ text: 'Jene' }] } },
      obs('a', { reference: 'Patient/p1' }),
      obs('b', { display: 'Sam', identifier: { system: 'https://carry.health/fhir/NamingSystem/signing-key', value: 'k' } }),
      obs('d', { reference: 'Practitioner/gp1', display: 'Dr A' }),
      tagged,
    ],
  };
  const details = viewer.summarise(bundle).sections[0].entries.map((e) => e.details.join(' | '));
  assert.ok(details.some((d) => d.includes('Entered by: the patient, at home')), details.join('\n'));
  assert.ok(details.some((d) => d.includes('Entered by: Sam (carer), at home')), details.join('\n'));
  assert.equal(
    details.filter((d) => d.includes('Entered by: the patient, at home')).length,
    2,
    'by reference and by tag',
  );
  assert.equal(details.filter((d) => d.includes('Entered by')).length, 3, 'a clinician reading says nothing');
});

test('a fact several sources sent names them all', () => {
  const bundle = {
    resourceType: 'Bundle',
    type: 'document',
    entry: [
      {
        fullUrl: 'urn:uuid:c',
        resource: {
          resourceType: 'Composition',
          subject: { reference: 'urn:uuid:p' },
          section: [
            {
              title: 'Allergies',
              code: { coding: [{ system: 'http://loinc.org', code: '48765-2' }] },
              entry: [{ reference: 'urn:uuid:a' }],
            },
          ],
        },
      },
      { fullUrl: 'urn:uuid:p', resource: { resourceType: 'Patient', name: [{ text: 'Jene' }] } },
      { fullUrl: 'urn:uuid:a', resource: { resourceType: 'AllergyIntolerance', code: { text: 'Penicillin' } } },
      {
        fullUrl: 'urn:uuid:v',
        resource: {
          resourceType: 'Provenance',
          target: [{ reference: 'urn:uuid:a' }],
          agent: [{ who: { display: 'gp' } }, { who: { display: 'hospital' } }],
        },
      },
    ],
  };
  const entry = viewer.summarise(bundle).sections[0].entries[0];
  assert.ok(entry.details.includes('Recorded by: gp, hospital'), entry.details.join(' | '));
});

test('the header gives age, language and interpreter, GP practice and contacts', () => {
  const bundle = ipsBundle();
  const patient = bundle.entry.find((e) => e.resource.resourceType === 'Patient').resource;
  patient.birthDate = '1961-03-02';
  patient.communication = [
    { language: { text: 'English' } },
    { language: { text: 'Chinese' }, preferred: true,
      extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/patient-interpreterRequired', valueBoolean: true }] }
  ];
  patient.generalPractitioner = [{ display: 'Beech Tree Surgery' }];
  patient.contact = [{ relationship: [{ text: 'Daughter' }], name: { given: ['Amy'], family: 'Lee' },
    telecom: [{ system: 'phone', value: '07700 900123' }] }];
  bundle.entry[0].resource.date = '2026-12-07T10:00:00Z';
  const p = viewer.summarise(bundle).patient;
  assert.equal(p.age, '65');
  assert.equal(p.language, 'Chinese');
  assert.equal(p.interpreter, true);
  assert.equal(p.gp, 'Beech Tree Surgery');
  assert.deepEqual(p.contacts, ['Amy Lee (daughter) 07700 900123']);
  patient.communication = [];
  patient.extension = [{ url: 'https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSCommunication',
    extension: [{ url: 'language', valueCodeableConcept: { coding: [{ code: 'pl', display: 'Polish' }] } },
      { url: 'interpreterRequired', valueBoolean: true }] }];
  const uk = viewer.summarise(bundle).patient;
  assert.equal(uk.language, 'Polish');
  assert.equal(uk.interpreter, true);
});

test('key results over time: oldest to newest in the newest unit, each value once, errors left out', () => {
  const model = viewer.summarise(h.withTrends(ipsBundle()));
  const byName = Object.fromEntries(model.results.map((r) => [r.name, r]));
  const a1c = byName.HbA1c;
  // The example's own HbA1c first, then the added ones.
  assert.deepEqual(a1c.points.map((p) => [p.date.slice(0, 10), p.value]),
    [['2017-11-10', 7.5], ['2021-03-02', 6.8], ['2023-05-10', 6.4], ['2025-11-30', 6.1]]);
  assert.equal(a1c.points[3].text, '6.1 %');
  assert.equal(a1c.total, 4);
  const bp = byName['Blood pressure'];
  assert.deepEqual(bp.points.map((p) => [p.value, p.second]), [[142, 91], [128, 82]]);
  assert.equal(bp.points[1].text, '128/82 mmHg');
  // Glucose: the newest is mmol/L, so the one in mg/dL is counted, not drawn.
  const glucose = byName.Glucose;
  assert.equal(glucose.unit, 'mmol/L');
  assert.deepEqual(glucose.points.map((p) => p.value), [5.9, 6.2]);
  assert.equal(glucose.otherUnits, 1);
  // The order is the concepts', whatever the Bundle's.
  assert.deepEqual(model.results.map((r) => r.name).filter((n) => ['HbA1c', 'Blood pressure', 'Glucose'].includes(n)),
    ['HbA1c', 'Blood pressure', 'Glucose']);
  // A Bundle with nothing to follow has no key results.
  const bare = ipsBundle();
  bare.entry = bare.entry.filter((e) => e.resource.resourceType !== 'Observation');
  assert.deepEqual(viewer.summarise(bare).results, []);
});

test('documents: a file inside the summary can be saved; one left out says so', () => {
  const { bundle, pdf } = h.withDocuments(ipsBundle());
  const section = viewer.summarise(bundle).sections.find((s) => s.code === 'documents');
  assert.equal(section.title, 'Documents');
  const [letter, scan] = section.entries;
  assert.equal(letter.text, 'Clinic letter');
  assert.deepEqual(letter.file && [letter.file.name, letter.file.type], ['Clinic-letter.pdf', 'application/pdf']);
  assert.deepEqual(Buffer.from(letter.file.data, 'base64'), pdf);
  assert.ok(letter.details.includes('PDF, ' + pdf.length + ' bytes'), letter.details.join(' | '));
  assert.equal(scan.file, undefined);
  assert.ok(scan.details.includes('The file is not in this summary: ask the patient for it'), scan.details.join(' | '));
  assert.ok(scan.details.includes('PDF, 3.3 MB'), scan.details.join(' | '));
});
