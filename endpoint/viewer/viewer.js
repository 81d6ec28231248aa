/*
 * Carry's SMART Health Links viewer.
 *
 * Reads a `shlink:/` payload from the URL fragment, fetches the encrypted file through
 * the SMART Health Links protocol (a manifest POST and a file GET, or one direct GET
 * for a U link), decrypts it here with WebCrypto (JWE compact, alg "dir", enc
 * "A256GCM", optional raw DEFLATE) and shows the International Patient Summary in it.
 *
 * The key never leaves the browser: the only requests are to the link's own URL and
 * to the locations its manifest names. Untrusted text only ever reaches the page as
 * text nodes.
 *
 * The same file loads in node (module.exports) so the decryption and the summary can
 * be tested there; in a browser it starts the page.
 */
(function (root, factory) {
  'use strict';
  var api = factory();
  if (typeof module === 'object' && module.exports) {
    module.exports = api;
  } else {
    root.CarryViewer = api;
    if (typeof document !== 'undefined') {
      if (document.readyState === 'loading') {
        document.addEventListener('DOMContentLoaded', api.start);
      } else {
        api.start();
      }
    }
  }
})(typeof self !== 'undefined' ? self : this, function () {
  'use strict';

  /** The recipient sent when the clinician gives no name. */
  var DEFAULT_RECIPIENT = 'Clinician (web viewer)';
  var LOINC = 'http://loinc.org';
  /** Carry's own section codes, for what no IPS section holds (documents). */
  var SECTION_CODES = 'https://carry.health/fhir/CodeSystem/summary-section';
  var NHS_NUMBER = 'https://fhir.nhs.uk/Id/nhs-number';

  /** IPS sections in the order a clinician needs them; others follow as found. */
  var SECTION_ORDER = [
    { code: '48765-2', kind: 'allergies', title: 'Allergies and intolerances' },
    { code: '10160-0', kind: 'medications', title: 'Medications' },
    { code: '11450-4', kind: 'problems', title: 'Problems' },
    { code: '30954-2', kind: 'results', title: 'Results' },
    { code: '8716-3', kind: 'vitals', title: 'Vital signs' },
    { code: '11369-6', kind: 'immunizations', title: 'Immunisations' },
    { code: '47519-4', kind: 'procedures', title: 'Procedures' },
    { code: 'documents', kind: 'documents', title: 'Documents' }
  ];

  /**
   * The results a clinician follows over time, by LOINC code: the same concepts as
   * the core's `trend` (core/src/trend.rs; a core test keeps the codes in step).
   * Blood pressure is drawn by its systolic value, with the diastolic beside it.
   */
  var KEY_RESULTS = [
    { name: 'HbA1c', codes: ['4548-4', '17856-6', '59261-8'] },
    { name: 'Blood pressure', codes: ['85354-9', '55284-4', '35094-2'] },
    { name: 'Body weight', codes: ['29463-7', '3141-9'] },
    { name: 'Body mass index', codes: ['39156-5'] },
    { name: 'Total cholesterol', codes: ['2093-3', '14647-2'] },
    { name: 'eGFR', codes: ['33914-3', '48642-3', '48643-1', '62238-1', '69405-9', '98979-8'] },
    { name: 'Creatinine', codes: ['2160-0', '38483-4', '14682-9'] },
    { name: 'Glucose', codes: ['2339-0', '2345-7', '15074-8', '14749-6', '41653-7'] }
  ];
  /** How many of a result's latest values are drawn. */
  var CHART_POINTS = 10;

  var MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

  /** A failure the page explains to the clinician; `kind` picks the message. */
  function ViewerError(kind, detail, extra) {
    this.name = 'ViewerError';
    this.kind = kind;
    this.message = detail || kind;
    this.extra = extra || {};
  }
  ViewerError.prototype = Object.create(Error.prototype);
  ViewerError.prototype.constructor = ViewerError;

  // ---------------------------------------------------------------- encoding

  /** Bytes of base64url text (no padding); throws on any other character. */
  function decodeB64u(text) {
    var s = String(text);
    if (!/^[A-Za-z0-9_-]*$/.test(s) || s.length % 4 === 1) {
      throw new ViewerError('malformed', 'not base64url');
    }
    var b64 = s.replace(/-/g, '+').replace(/_/g, '/');
    while (b64.length % 4) b64 += '=';
    var bin = atob(b64);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  /** UTF-8 text of bytes; throws on invalid UTF-8. */
  function utf8(bytes) {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  }

  function ascii(text) {
    var out = new Uint8Array(text.length);
    for (var i = 0; i < text.length; i++) out[i] = text.charCodeAt(i) & 0x7f;
    return out;
  }

  // ----------------------------------------------------------- the payload

  /**
   * The SHL payload in `text` (a URL fragment, or any text holding `shlink:/…`):
   * `{url, key, exp?, flag, label?}`. Throws a ViewerError of kind `malformed` or
   * `version`.
   */
  function parseShlink(text) {
    var s = String(text || '');
    var at = s.indexOf('shlink:/');
    if (at < 0) throw new ViewerError('malformed', 'no shlink:/ in the link');
    var encoded = s.slice(at + 'shlink:/'.length).split(/[#?&\s]/)[0];
    var payload;
    try {
      payload = JSON.parse(utf8(decodeB64u(encoded)));
    } catch (e) {
      throw new ViewerError('malformed', 'the payload does not decode');
    }
    if (!payload || typeof payload !== 'object' || Array.isArray(payload)) {
      throw new ViewerError('malformed', 'the payload is not an object');
    }
    if (payload.v !== undefined && payload.v !== 1) {
      throw new ViewerError('version', 'protocol version ' + String(payload.v));
    }
    if (typeof payload.url !== 'string' || !/^https?:\/\//i.test(payload.url)) {
      throw new ViewerError('malformed', 'the payload has no http(s) url');
    }
    try {
      new URL(payload.url);
    } catch (e) {
      throw new ViewerError('malformed', 'the payload url does not parse');
    }
    var key;
    try {
      key = decodeB64u(payload.key);
    } catch (e) {
      key = null;
    }
    if (typeof payload.key !== 'string' || payload.key.length !== 43 || !key || key.length !== 32) {
      throw new ViewerError('malformed', 'the payload key is not 32 bytes of base64url');
    }
    if (payload.exp !== undefined && (typeof payload.exp !== 'number' || !isFinite(payload.exp))) {
      throw new ViewerError('malformed', 'exp is not a number');
    }
    if (payload.flag !== undefined && (typeof payload.flag !== 'string' || !/^[A-Z]*$/.test(payload.flag))) {
      throw new ViewerError('malformed', 'flag is not a string of letters');
    }
    return {
      url: payload.url,
      key: payload.key,
      exp: payload.exp,
      flag: payload.flag || '',
      label: typeof payload.label === 'string' ? payload.label.slice(0, 80) : undefined
    };
  }

  /** Whether a payload's `exp` has passed at `nowMs`. */
  function isExpired(link, nowMs) {
    return typeof link.exp === 'number' && link.exp * 1000 <= nowMs;
  }

  // ---------------------------------------------------------- the protocol

  function httpFailure(resp) {
    if (resp.status === 404) return new ViewerError('gone', 'HTTP 404');
    if (resp.status === 429) return new ViewerError('busy', 'HTTP 429');
    return new ViewerError('network', 'HTTP ' + resp.status);
  }

  async function send(fetchFn, url, init) {
    var options = Object.assign({ credentials: 'omit', cache: 'no-store', referrerPolicy: 'no-referrer' }, init);
    try {
      return await fetchFn(url, options);
    } catch (e) {
      throw new ViewerError('network', 'the server could not be reached');
    }
  }

  async function readFile(fetchFn, url) {
    var resp = await send(fetchFn, url, { method: 'GET' });
    if (!resp.ok) throw httpFailure(resp);
    return (await resp.text()).trim();
  }

  /**
   * A typed name as the endpoint takes it: one plain line of at most 200 characters.
   * Control characters (tabs and line breaks too), line and paragraph separators and
   * bidi marks, embeddings, overrides and isolates, which the endpoint refuses, become
   * spaces; runs of spaces become one.
   */
  function plainRecipient(name) {
    return String(name || '')
      .replace(/[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, ' ')
      .replace(/ {2,}/g, ' ')
      .trim()
      .slice(0, 200);
  }

  /**
   * Fetch the link's encrypted file (a JWE): the direct GET of a U link, else the
   * manifest POST and, unless the file is embedded, a GET of its location. `opts`:
   * `{recipient, passcode}`. Throws a ViewerError: `passcode` (with
   * `extra.remaining`), `gone` (404), `busy`, `network` or `format`.
   */
  async function retrieve(link, opts, fetchFn) {
    var recipient = plainRecipient(opts && opts.recipient) || DEFAULT_RECIPIENT;
    if (link.flag.indexOf('U') >= 0) {
      var direct = new URL(link.url);
      direct.searchParams.set('recipient', recipient);
      return readFile(fetchFn, direct.toString());
    }
    var body = { recipient: recipient };
    if (link.flag.indexOf('P') >= 0) body.passcode = (opts && opts.passcode) || '';
    var resp = await send(fetchFn, link.url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body)
    });
    if (resp.status === 401) {
      var answer = {};
      try {
        answer = await resp.json();
      } catch (e) {
        answer = {};
      }
      var remaining = typeof answer.remainingAttempts === 'number' ? answer.remainingAttempts : undefined;
      throw new ViewerError('passcode', 'HTTP 401', { remaining: remaining });
    }
    if (!resp.ok) throw httpFailure(resp);
    var manifest;
    try {
      manifest = await resp.json();
    } catch (e) {
      throw new ViewerError('format', 'the manifest is not JSON');
    }
    var files = manifest && Array.isArray(manifest.files) ? manifest.files : [];
    var file = files.filter(function (f) {
      return f && f.contentType === 'application/fhir+json';
    })[0] || files[0];
    if (!file) throw new ViewerError('format', 'the manifest lists no file');
    if (typeof file.embedded === 'string') return file.embedded.trim();
    if (typeof file.location === 'string') return readFile(fetchFn, file.location);
    throw new ViewerError('format', 'the manifest file has neither embedded nor location');
  }

  // -------------------------------------------------------------- decryption

  async function inflateRawStream(bytes) {
    if (typeof DecompressionStream === 'undefined') {
      throw new ViewerError('format', 'this browser cannot decompress the file');
    }
    var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('deflate-raw'));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  /**
   * Decrypt a compact JWE (`alg: dir`, `enc: A256GCM`, optional `zip: DEF`) with a
   * base64url key: `{header, plaintext}` (plaintext as bytes). `deps` may supply
   * `subtle` (WebCrypto) and `inflateRaw(bytes)`; by default the browser's. Throws a
   * ViewerError: `format` for what this viewer does not read, `decrypt` when the
   * key or the ciphertext is wrong.
   */
  async function decryptJwe(jwe, keyB64u, deps) {
    deps = deps || {};
    var subtle = deps.subtle || (typeof crypto !== 'undefined' && crypto.subtle);
    var inflate = deps.inflateRaw || inflateRawStream;
    if (!subtle) throw new ViewerError('insecure', 'WebCrypto is not available (the page needs https)');
    var parts = String(jwe).trim().split('.');
    if (parts.length !== 5) throw new ViewerError('format', 'not a JWE in compact form');
    var header;
    try {
      header = JSON.parse(utf8(decodeB64u(parts[0])));
    } catch (e) {
      throw new ViewerError('format', 'the JWE header does not decode');
    }
    if (!header || header.alg !== 'dir' || header.enc !== 'A256GCM') {
      throw new ViewerError('format', 'only alg dir with enc A256GCM is supported');
    }
    if (header.zip !== undefined && header.zip !== 'DEF') {
      throw new ViewerError('format', 'unknown zip ' + String(header.zip));
    }
    var iv, ciphertext, tag, key;
    try {
      iv = decodeB64u(parts[2]);
      ciphertext = decodeB64u(parts[3]);
      tag = decodeB64u(parts[4]);
      key = decodeB64u(keyB64u);
    } catch (e) {
      throw new ViewerError('format', 'a JWE part does not decode');
    }
    if (parts[1] !== '' || iv.length !== 12 || tag.length !== 16 || key.length !== 32) {
      throw new ViewerError('format', 'unexpected JWE part sizes');
    }
    var sealed = new Uint8Array(ciphertext.length + tag.length);
    sealed.set(ciphertext, 0);
    sealed.set(tag, ciphertext.length);
    var plaintext;
    try {
      var cryptoKey = await subtle.importKey('raw', key, { name: 'AES-GCM' }, false, ['decrypt']);
      plaintext = new Uint8Array(
        await subtle.decrypt(
          { name: 'AES-GCM', iv: iv, additionalData: ascii(parts[0]), tagLength: 128 },
          cryptoKey,
          sealed
        )
      );
    } catch (e) {
      throw new ViewerError('decrypt', 'the file does not decrypt with this key');
    }
    if (header.zip === 'DEF') {
      try {
        plaintext = await inflate(plaintext);
      } catch (e) {
        if (e instanceof ViewerError) throw e;
        throw new ViewerError('format', 'the file does not decompress');
      }
    }
    return { header: header, plaintext: plaintext };
  }

  /** The JSON a decrypted file holds. */
  function parseJson(bytes) {
    try {
      return JSON.parse(utf8(bytes));
    } catch (e) {
      throw new ViewerError('content', 'the file is not JSON');
    }
  }

  // ------------------------------------------------------------ the summary

  function arr(x) {
    return Array.isArray(x) ? x : x === undefined || x === null ? [] : [x];
  }

  function str(x) {
    return typeof x === 'string' ? x : typeof x === 'number' || typeof x === 'boolean' ? String(x) : '';
  }

  /** A CodeableConcept as text: its text, else its first coding's display or code. */
  function conceptText(cc) {
    if (!cc || typeof cc !== 'object') return '';
    if (str(cc.text)) return str(cc.text);
    var codings = arr(cc.coding);
    for (var i = 0; i < codings.length; i++) {
      if (codings[i] && str(codings[i].display)) return str(codings[i].display);
    }
    for (var j = 0; j < codings.length; j++) {
      if (codings[j] && str(codings[j].code)) return str(codings[j].code);
    }
    return '';
  }

  function concepts(list) {
    return arr(list).map(conceptText).filter(Boolean).join(', ');
  }

  function statusCode(cc) {
    var c = arr(cc && cc.coding)[0];
    return (c && str(c.code)) || str(cc && cc.text);
  }

  function pad2(n) {
    return (n < 10 ? '0' : '') + n;
  }

  /** A FHIR date or dateTime as a person reads it, as written (no time-zone shift). */
  function formatDate(value) {
    var s = str(value);
    var m = /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2}))?)?)?/.exec(s);
    if (!m) return s;
    if (!m[2]) return m[1];
    var month = MONTHS[parseInt(m[2], 10) - 1] || m[2];
    if (!m[3]) return month + ' ' + m[1];
    var day = String(parseInt(m[3], 10)) + ' ' + month + ' ' + m[1];
    return m[4] ? day + ', ' + m[4] + ':' + m[5] : day;
  }

  /** Epoch seconds as a local date and time. */
  function formatEpoch(seconds) {
    var d = new Date(seconds * 1000);
    return String(d.getDate()) + ' ' + MONTHS[d.getMonth()] + ' ' + d.getFullYear() + ', ' +
      pad2(d.getHours()) + ':' + pad2(d.getMinutes());
  }

  function quantityText(q) {
    if (!q || typeof q !== 'object') return '';
    var v = str(q.value);
    var unit = str(q.unit) || str(q.code);
    return (str(q.comparator) + v + (unit && unit !== '1' ? ' ' + unit : '')).trim();
  }

  function periodText(p) {
    if (!p || typeof p !== 'object') return '';
    if (p.start && p.end) return formatDate(p.start) + ' to ' + formatDate(p.end);
    if (p.start) return 'since ' + formatDate(p.start);
    if (p.end) return 'until ' + formatDate(p.end);
    return '';
  }

  /** The naming system of the keys Carry's carers sign with: a performer so named is a carer. */
  var CARER_KEYS = 'https://carry.health/fhir/NamingSystem/signing-key';
  /** The code system of the tag Carry puts on an item the patient or a carer entered. */
  var ENTERED_BY = 'https://carry.health/fhir/CodeSystem/entered-by';

  /**
   * Who entered a reading, when it was not a clinician: the patient (the performer is
   * the subject) or a carer (named by their signing key), so a home reading is never
   * mistaken for a clinic one. Empty otherwise.
   */
  function enteredBy(r) {
    var p = arr(r.performer)[0];
    var tag = arr(r.meta && r.meta.tag).filter(function (t) { return t && t.system === ENTERED_BY; })[0];
    if (tag && tag.code === 'patient') return 'the patient, at home';
    if (tag && tag.code === 'carer') {
      return ((p && str(p.display)) || 'a carer') + ' (carer), at home';
    }
    if (!p) return '';
    if (p.identifier && p.identifier.system === CARER_KEYS) {
      return (str(p.display) || 'a carer') + ' (carer), at home';
    }
    var subject = r.subject && str(r.subject.reference);
    if (subject && str(p.reference) === subject) return 'the patient, at home';
    return '';
  }

  /** A value[x] (of an Observation or a component) as text. */
  function valueText(r) {
    if (!r || typeof r !== 'object') return '';
    if (r.valueQuantity) return quantityText(r.valueQuantity);
    if (r.valueCodeableConcept) return conceptText(r.valueCodeableConcept);
    if (r.valueString !== undefined) return str(r.valueString);
    if (r.valueBoolean !== undefined) return r.valueBoolean ? 'yes' : 'no';
    if (r.valueInteger !== undefined) return str(r.valueInteger);
    if (r.valueRange) {
      return (quantityText(r.valueRange.low) + ' to ' + quantityText(r.valueRange.high)).trim();
    }
    if (r.valueRatio) return quantityText(r.valueRatio.numerator) + ' / ' + quantityText(r.valueRatio.denominator);
    if (r.valueDateTime) return formatDate(r.valueDateTime);
    if (r.valuePeriod) return periodText(r.valuePeriod);
    return '';
  }

  function hasLoinc(node, code) {
    return arr(node && node.code && node.code.coding).some(function (c) {
      return c && c.code === code && (!c.system || c.system === LOINC);
    });
  }

  /** The number and unit of a Quantity, or null. */
  function numberOf(q) {
    if (!q || typeof q.value !== 'number' || !isFinite(q.value)) return null;
    return { value: q.value, unit: str(q.code) || str(q.unit) };
  }

  /**
   * One value of a key result from Observation `r`, or null: its date, its value (the
   * systolic for blood pressure, with `second` the diastolic) and unit, and the text
   * shown for it.
   */
  function keyPoint(r, codes) {
    var date = str(r.effectiveDateTime) || str(r.effectivePeriod && r.effectivePeriod.start) || str(r.issued);
    if (!date || r.status === 'entered-in-error' || r.status === 'cancelled') return null;
    var v = numberOf(r.valueQuantity);
    var second = null;
    if (!v) {
      var comps = arr(r.component);
      var sys = comps.filter(function (c) { return hasLoinc(c, '8480-6'); })[0];
      var dia = comps.filter(function (c) { return hasLoinc(c, '8462-4'); })[0];
      if (sys && dia) {
        v = numberOf(sys.valueQuantity);
        var d = numberOf(dia.valueQuantity);
        if (!v || !d) return null;
        second = d.value;
      } else {
        var c = comps.filter(function (x) {
          return codes.some(function (k) { return hasLoinc(x, k); });
        })[0];
        v = c && numberOf(c.valueQuantity);
      }
    }
    if (!v) return null;
    var unit = v.unit === 'mm[Hg]' ? 'mmHg' : v.unit;
    var text = second === null
      ? quantityText(r.valueQuantity || { value: v.value, unit: unit })
      : v.value + '/' + second + ' ' + unit;
    return { date: date, value: v.value, second: second, unit: v.unit, text: text };
  }

  /**
   * The key results the Bundle holds, in KEY_RESULTS order: for each, its values in
   * the unit of the newest one, oldest to newest (the last CHART_POINTS), and how many
   * in another unit were left out. Values held twice (same date and value) count once.
   */
  function keyResults(bundle) {
    var observations = arr(bundle.entry).map(function (e) { return e && e.resource; })
      .filter(function (r) { return r && r.resourceType === 'Observation'; });
    var out = [];
    KEY_RESULTS.forEach(function (k) {
      var seen = {};
      var points = [];
      observations.forEach(function (r) {
        if (!k.codes.some(function (c) { return hasLoinc(r, c); })) return;
        var p = keyPoint(r, k.codes);
        if (!p) return;
        var key = p.date + '|' + p.value + '|' + p.second + '|' + p.unit;
        if (seen[key]) return;
        seen[key] = true;
        points.push(p);
      });
      if (!points.length) return;
      points.sort(function (a, b) { return a.date < b.date ? -1 : a.date > b.date ? 1 : 0; });
      var unit = points[points.length - 1].unit;
      var same = points.filter(function (p) { return p.unit === unit; });
      out.push({
        name: k.name,
        unit: unit,
        points: same.slice(-CHART_POINTS),
        total: same.length,
        since: same[0].date,
        otherUnits: points.length - same.length
      });
    });
    return out;
  }

  /** A content type in words. */
  function fileKind(type) {
    var words = { 'application/pdf': 'PDF', 'image/jpeg': 'JPEG image', 'image/png': 'PNG image',
      'image/heic': 'HEIC photo', 'text/plain': 'text' };
    return words[type] || type;
  }

  /** A size in bytes as a person reads it. */
  function sizeText(bytes) {
    if (typeof bytes !== 'number' || !isFinite(bytes) || bytes < 0) return '';
    if (bytes < 1024) return bytes + ' bytes';
    if (bytes < 1024 * 1024) return Math.round(bytes / 1024) + ' KB';
    return (Math.round(bytes / (1024 * 1024) * 10) / 10) + ' MB';
  }

  /** A file name from a title: its letters and digits, with the type's extension. */
  function fileName(title, type) {
    var ext = { 'application/pdf': 'pdf', 'image/jpeg': 'jpg', 'image/png': 'png', 'image/heic': 'heic',
      'text/plain': 'txt' }[type] || 'bin';
    var stem = title.replace(/[^A-Za-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 80) || 'document';
    return stem + '.' + ext;
  }

  /** Standard base64 as bytes. */
  function decodeB64(text) {
    var bin = atob(String(text).replace(/\s+/g, ''));
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i += 1) out[i] = bin.charCodeAt(i);
    return out;
  }

  /** Entries of the Bundle by fullUrl and by `Type/id`. */
  function indexBundle(bundle) {
    var byRef = {};
    arr(bundle.entry).forEach(function (e) {
      var r = e && e.resource;
      if (!r || typeof r !== 'object') return;
      if (str(e.fullUrl)) byRef[e.fullUrl] = r;
      if (str(r.resourceType) && str(r.id)) byRef[r.resourceType + '/' + r.id] = r;
    });
    return function resolve(ref) {
      var s = str(ref && ref.reference);
      if (!s) return null;
      if (byRef[s]) return byRef[s];
      var m = /([A-Za-z]+\/[A-Za-z0-9\-.]{1,64})(?:\/_history\/.*)?$/.exec(s);
      return (m && byRef[m[1]]) || null;
    };
  }

  /**
   * Per entry reference, the sources a Provenance in the Bundle names for it (the
   * patient's record holds one copy of a fact several sources sent, and says who).
   */
  function provenanceIndex(bundle) {
    var out = {};
    arr(bundle.entry).forEach(function (e) {
      var r = e && e.resource;
      if (!r || r.resourceType !== 'Provenance') return;
      var names = arr(r.agent)
        .map(function (a) {
          return str(a && a.who && a.who.display);
        })
        .filter(function (n) {
          return n;
        });
      arr(r.target).forEach(function (t) {
        var ref = str(t && t.reference);
        if (ref) out[ref] = names;
      });
    });
    return out;
  }

  function dosageText(d) {
    if (!d || typeof d !== 'object') return '';
    if (str(d.text)) return str(d.text);
    var bits = [];
    arr(d.doseAndRate).forEach(function (dr) {
      if (dr && dr.doseQuantity) bits.push(quantityText(dr.doseQuantity));
    });
    var rep = d.timing && d.timing.repeat;
    if (rep) {
      var unit = { s: 'second', min: 'minute', h: 'hour', d: 'day', wk: 'week', mo: 'month', a: 'year' }[rep.periodUnit];
      if (unit) {
        var freq = rep.frequency || 1;
        var period = rep.period && rep.period !== 1 ? rep.period + ' ' + unit + 's' : unit;
        bits.push(freq + ' time' + (freq === 1 ? '' : 's') + ' a ' + period);
      }
    }
    if (d.timing && d.timing.code) bits.push(conceptText(d.timing.code));
    if (d.route) bits.push(conceptText(d.route));
    return bits.filter(Boolean).join(', ');
  }

  /** One resource a section references, as `{text, details[], flag?}`. */
  function describe(r, resolve) {
    var details = [];
    var add = function (label, value) {
      if (value) details.push(label ? label + ': ' + value : value);
    };
    switch (r.resourceType) {
      case 'AllergyIntolerance': {
        var clinical = statusCode(r.clinicalStatus);
        var verification = statusCode(r.verificationStatus);
        add('Criticality', str(r.criticality));
        arr(r.reaction).forEach(function (rx) {
          var what = concepts(rx && rx.manifestation);
          if (what) add('Reaction', what + (str(rx.severity) ? ' (' + rx.severity + ')' : ''));
        });
        add('Type', [str(r.type), arr(r.category).map(str).join(', ')].filter(Boolean).join(', '));
        if (clinical && clinical !== 'active') add('Status', clinical);
        if (verification && verification !== 'confirmed') add('Verification', verification);
        add('Since', formatDate(r.onsetDateTime) || periodText(r.onsetPeriod) || str(r.onsetString));
        return {
          text: conceptText(r.code) || 'Unnamed allergy or intolerance',
          details: details,
          flag: r.criticality === 'high' ? 'High criticality' : undefined
        };
      }
      case 'MedicationStatement':
      case 'MedicationRequest':
      case 'MedicationAdministration':
      case 'MedicationDispense': {
        var med = r.medicationCodeableConcept ? conceptText(r.medicationCodeableConcept) : '';
        if (!med && r.medicationReference) {
          var m = resolve(r.medicationReference);
          med = (m && conceptText(m.code)) || str(r.medicationReference.display);
        }
        var dosage = arr(r.dosage || r.dosageInstruction).map(dosageText).filter(Boolean).join('; ');
        add('Dose', dosage);
        if (str(r.status) && r.status !== 'active') add('Status', r.status);
        add('', periodText(r.effectivePeriod) || (r.effectiveDateTime ? formatDate(r.effectiveDateTime) : ''));
        if (r.authoredOn) add('Prescribed', formatDate(r.authoredOn));
        return { text: med || 'Unnamed medication', details: details };
      }
      case 'Condition': {
        var cs = statusCode(r.clinicalStatus);
        add('Status', cs);
        add('Severity', conceptText(r.severity));
        add('Onset', formatDate(r.onsetDateTime) || periodText(r.onsetPeriod) || str(r.onsetString));
        add('Resolved', formatDate(r.abatementDateTime) || str(r.abatementString));
        return { text: conceptText(r.code) || 'Unnamed problem', details: details };
      }
      case 'Observation': {
        add('', valueText(r));
        arr(r.component).forEach(function (c) {
          var v = valueText(c);
          if (v) add(conceptText(c.code), v);
        });
        arr(r.hasMember).forEach(function (ref) {
          var member = resolve(ref);
          if (member) {
            var v = valueText(member);
            add(conceptText(member.code), v || '(no value)');
          }
        });
        add('Interpretation', concepts(r.interpretation));
        add('', r.effectiveDateTime ? formatDate(r.effectiveDateTime) : periodText(r.effectivePeriod));
        add('Entered by', enteredBy(r));
        arr(r.note).forEach(function (n) {
          add('Note', str(n && n.text));
        });
        return { text: conceptText(r.code) || 'Unnamed result', details: details };
      }
      case 'Immunization': {
        add('', formatDate(r.occurrenceDateTime) || str(r.occurrenceString));
        if (str(r.status) && r.status !== 'completed') add('Status', r.status);
        var dose = arr(r.protocolApplied)[0];
        if (dose) add('Dose', str(dose.doseNumberPositiveInt) || str(dose.doseNumberString));
        return { text: conceptText(r.vaccineCode) || 'Unnamed vaccine', details: details };
      }
      case 'Procedure': {
        add('', formatDate(r.performedDateTime) || periodText(r.performedPeriod) || str(r.performedString));
        if (str(r.status) && r.status !== 'completed') add('Status', r.status);
        return { text: conceptText(r.code) || 'Unnamed procedure', details: details };
      }
      case 'DeviceUseStatement': {
        var dev = r.device ? resolve(r.device) : null;
        add('', periodText(r.timingPeriod) || formatDate(r.timingDateTime));
        return {
          text: (dev && (conceptText(dev.type) || str(arr(dev.deviceName)[0] && arr(dev.deviceName)[0].name))) ||
            str(r.device && r.device.display) || 'Device',
          details: details
        };
      }
      case 'DocumentReference': {
        var atts = arr(r.content).map(function (c) { return c && c.attachment; }).filter(Boolean);
        var a = atts.filter(function (x) { return typeof x.data === 'string'; })[0] || atts[0] || {};
        add('', formatDate(r.date) || formatDate(a.creation));
        add('', [fileKind(str(a.contentType)), sizeText(a.size)].filter(Boolean).join(', '));
        if (typeof a.data !== 'string') {
          add('', a.url ? 'The file is kept by the provider' : 'The file is not in this summary: ask the patient for it');
        }
        add('Entered by', enteredBy(r));
        var title = str(r.description) || str(a.title) || conceptText(r.type) || 'Document';
        return {
          text: title,
          details: details,
          file: typeof a.data === 'string'
            ? { name: fileName(title, str(a.contentType)), type: str(a.contentType) || 'application/octet-stream', data: a.data }
            : undefined
        };
      }
      default:
        return { text: conceptText(r.code) || str(r.resourceType) || 'Entry', details: details };
    }
  }

  var ENTITIES = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ' };

  function decodeEntities(s) {
    return s.replace(/&(#x[0-9a-fA-F]+|#\d+|[a-zA-Z]+);/g, function (all, name) {
      if (name[0] === '#') {
        var code = name[1] === 'x' || name[1] === 'X' ? parseInt(name.slice(2), 16) : parseInt(name.slice(1), 10);
        return code > 0 && code < 0x110000 ? String.fromCodePoint(code) : '';
      }
      return Object.prototype.hasOwnProperty.call(ENTITIES, name) ? ENTITIES[name] : all;
    });
  }

  /**
   * A section's narrative (XHTML) as lines of plain text: block elements and table
   * rows end lines, cells are joined with " · ". The result is only ever shown as
   * text, never parsed as markup.
   */
  function narrativeText(xhtml) {
    var s = str(xhtml);
    s = s.replace(/<(script|style)\b[\s\S]*?<\/\1\s*>/gi, ' ');
    s = s.replace(/<\s*\/?\s*(br|p|div|tr|li|ul|ol|h[1-6]|table|thead|tbody|tfoot|caption)\b[^>]*>/gi, '\n');
    s = s.replace(/<\s*\/\s*t[dh]\s*>/gi, '\t');
    s = s.replace(/<[^>]*>/g, '');
    s = decodeEntities(s);
    return s
      .split('\n')
      .map(function (line) {
        return line
          .split('\t')
          .map(function (cell) {
            return cell.replace(/\s+/g, ' ').trim();
          })
          .filter(Boolean)
          .join(' · ');
      })
      .filter(Boolean);
  }

  function sectionCode(section) {
    var codings = arr(section && section.code && section.code.coding);
    for (var i = 0; i < codings.length; i++) {
      var system = codings[i] && codings[i].system;
      if ((!system || system === LOINC || system === SECTION_CODES) && str(codings[i].code)) {
        return codings[i].code;
      }
    }
    return '';
  }

  function patientName(p) {
    var names = arr(p && p.name);
    var n = names.filter(function (x) {
      return x && x.use === 'official';
    })[0] || names[0];
    if (!n) return '';
    if (str(n.text)) return str(n.text);
    return arr(n.given).map(str).concat([str(n.family)]).filter(Boolean).join(' ');
  }

  function nhsNumber(p) {
    var id = arr(p && p.identifier).filter(function (i) {
      return i && i.system === NHS_NUMBER && str(i.value);
    })[0];
    if (!id) return '';
    var digits = str(id.value).replace(/\s/g, '');
    return /^\d{10}$/.test(digits) ? digits.slice(0, 3) + ' ' + digits.slice(3, 6) + ' ' + digits.slice(6) : str(id.value);
  }

  var INTERPRETER = 'http://hl7.org/fhir/StructureDefinition/patient-interpreterRequired';
  var UK_COMMUNICATION = 'https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSCommunication';

  /** Whole years from a FHIR birth date to `today` (YYYY-MM-DD); '' when unknown. */
  function ageAt(birth, today) {
    var b = /^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?/.exec(str(birth));
    var t = /^(\d{4})-(\d{2})-(\d{2})/.exec(str(today));
    if (!b || !t) return '';
    var md = function (m, d) { return (parseInt(m || '1', 10)) * 100 + parseInt(d || '1', 10); };
    var years = parseInt(t[1], 10) - parseInt(b[1], 10) - (md(t[2], t[3]) < md(b[2], b[3]) ? 1 : 0);
    return years >= 0 ? String(years) : '';
  }

  /** The UK Core communication extensions' parts, one array per extension. */
  function ukCommunication(p) {
    return arr(p && p.extension).filter(function (e) {
      return e && e.url === UK_COMMUNICATION;
    }).map(function (e) { return arr(e.extension); });
  }

  /** The preferred language, and whether an interpreter is needed. */
  function languageOf(p) {
    var comms = arr(p && p.communication);
    var chosen = comms.filter(function (c) { return c && c.preferred === true; })[0] || comms[0];
    var language = chosen ? conceptText(chosen.language) : '';
    var uk = ukCommunication(p);
    if (!language) {
      uk.forEach(function (parts) {
        parts.forEach(function (e) {
          if (!language && e.url === 'language') language = conceptText(e.valueCodeableConcept);
        });
      });
    }
    var flags = arr(p && p.extension).concat.apply(arr(p && p.extension), comms.map(function (c) { return arr(c && c.extension); }));
    var interpreter = flags.some(function (e) { return e && e.url === INTERPRETER && e.valueBoolean === true; }) ||
      uk.some(function (parts) {
        return parts.some(function (e) { return e.url === 'interpreterRequired' && e.valueBoolean === true; });
      });
    return { language: language, interpreter: interpreter };
  }

  /** The people to contact, a line each: name, relationship, telephone. */
  function contactsOf(p) {
    return arr(p && p.contact).map(function (c) {
      var n = c.name || {};
      var name = str(n.text) || arr(n.given).map(str).concat([str(n.family)]).filter(Boolean).join(' ');
      var rel = arr(c.relationship).map(conceptText).filter(Boolean)[0];
      var phone = arr(c.telecom).filter(function (t) { return t && t.system === 'phone'; })[0];
      return [name, rel ? '(' + rel.toLowerCase() + ')' : '', phone ? str(phone.value) : ''].filter(Boolean).join(' ');
    }).filter(Boolean);
  }

  /**
   * What the page shows of an IPS document Bundle: the patient, when the summary
   * was made, and its sections in clinical order (allergies first), each with its
   * entries, else its narrative as text, else why it is empty. Throws a ViewerError
   * of kind `content` when the Bundle is not a document led by a Composition.
   */
  function summarise(bundle) {
    if (!bundle || bundle.resourceType !== 'Bundle' || bundle.type !== 'document') {
      throw new ViewerError('content', 'not a document Bundle');
    }
    var composition = arr(bundle.entry)[0] && bundle.entry[0].resource;
    if (!composition || composition.resourceType !== 'Composition') {
      throw new ViewerError('content', 'the first entry is not a Composition');
    }
    var resolve = indexBundle(bundle);
    var sourcesOf = provenanceIndex(bundle);
    var patient = resolve(composition.subject) || {};
    var sections = arr(composition.section).map(function (section, i) {
      var code = sectionCode(section);
      var known = SECTION_ORDER.filter(function (k) {
        return k.code === code;
      })[0];
      var refs = arr(section.entry);
      var entries = [];
      var unresolved = 0;
      refs.forEach(function (ref) {
        var r = resolve(ref);
        if (!r) {
          unresolved += 1;
          return;
        }
        var entry = describe(r, resolve);
        var sources = sourcesOf[str(ref && ref.reference)];
        if (sources && sources.length > 1) entry.details.push('Recorded by: ' + sources.join(', '));
        entries.push(entry);
      });
      var narrative = section.text ? narrativeText(section.text.div) : [];
      // No entries: the reason given, else the narrative, else "No information".
      var empty = '';
      if (!entries.length) {
        empty = conceptText(section.emptyReason);
        if (empty || !narrative.length) {
          narrative = [];
          empty = empty || 'No information';
        }
      }
      return {
        code: code,
        kind: known ? known.kind : 'other',
        title: str(section.title) || (known ? known.title : 'Section'),
        entries: entries,
        // The narrative stands in when entries are missing or cannot be resolved.
        narrative: !entries.length || unresolved ? narrative : [],
        empty: empty,
        rank: known ? SECTION_ORDER.indexOf(known) : SECTION_ORDER.length + i
      };
    });
    sections.sort(function (a, b) {
      return a.rank - b.rank;
    });
    var spoken = languageOf(patient);
    var gp = arr(patient.generalPractitioner).map(function (g) {
      var r = resolve(g);
      return (r && str(r.name)) || str(g && g.display);
    }).filter(Boolean)[0] || '';
    return {
      patient: {
        name: patientName(patient),
        birthDate: str(patient.birthDate),
        age: ageAt(patient.birthDate, str(composition.date).slice(0, 10) || new Date().toISOString().slice(0, 10)),
        gender: str(patient.gender),
        nhsNumber: nhsNumber(patient),
        language: spoken.language,
        interpreter: spoken.interpreter,
        gp: gp,
        contacts: contactsOf(patient)
      },
      title: str(composition.title),
      date: str(composition.date),
      sections: sections,
      results: keyResults(bundle)
    };
  }

  // ----------------------------------------------------------------- the page

  /** An element with a class and children (strings become text nodes). */
  function el(tag, className, children) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    arr(children).forEach(function (c) {
      if (c === null || c === undefined || c === '') return;
      node.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    });
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  var MESSAGES = {
    malformed: 'This link is malformed or incomplete. Ask the patient to show the QR code or send the link again.',
    version: 'This link was made for a newer version of SMART Health Links than this viewer understands.',
    gone: 'This summary is no longer shared. The link may have expired, been revoked by the patient, or been locked after too many wrong passcodes.',
    locked: 'This link is locked after too many wrong passcodes. Ask the patient for a new link.',
    decrypt: 'The summary could not be decrypted. The link may be damaged or incomplete.',
    format: 'The shared file is not in a format this viewer can read.',
    insecure: 'This page must be opened over HTTPS to decrypt the summary: the browser offers no decryption on a plain-HTTP page.',
    content: 'The shared file is not a patient summary this viewer can show.',
    busy: 'The server is busy. Wait a moment and try again.',
    network: 'The server could not be reached. Check the connection and try again.'
  };

  /** The text of a ViewerError for the clinician. */
  function messageFor(err, link, state) {
    var kind = err && err.kind;
    if (kind === 'expired') {
      return 'This link expired on ' + formatEpoch(link.exp) + '. Ask the patient for a new one.';
    }
    if (kind === 'passcode') {
      var n = err.extra.remaining;
      if (n === 0) return 'Wrong passcode. No attempts left: the link is now locked.';
      if (typeof n === 'number') {
        return 'Wrong passcode. ' + n + (n === 1 ? ' attempt' : ' attempts') + ' left.';
      }
      return 'Wrong passcode.';
    }
    if (kind === 'gone' && state && state.lockedHere) return MESSAGES.locked;
    if (kind === 'gone' && link && isExpired(link, Date.now())) {
      return 'This link expired on ' + formatEpoch(link.exp) + '. Ask the patient for a new one.';
    }
    return MESSAGES[kind] || 'Something went wrong: the summary cannot be shown.';
  }

  function messageBox(text, kind) {
    var box = el('p', 'message error', text);
    box.id = 'message';
    box.setAttribute('role', 'alert');
    box.setAttribute('data-kind', kind || 'error');
    return box;
  }

  function renderPatient(model, link) {
    var dl = el('dl');
    var row = function (label, value) {
      if (!value) return;
      dl.appendChild(el('dt', null, label));
      dl.appendChild(el('dd', null, value));
    };
    var born = formatDate(model.patient.birthDate);
    row('Date of birth', born && model.patient.age ? born + ' (age ' + model.patient.age + ')' : born);
    row('NHS number', model.patient.nhsNumber);
    row('Sex', model.patient.gender);
    row('Language', model.patient.language +
      (model.patient.language && model.patient.interpreter ? ' (interpreter needed)' : ''));
    row('GP practice', model.patient.gp);
    model.patient.contacts.forEach(function (c) { row('Contact', c); });
    row('Summary made', formatDate(model.date));
    if (typeof link.exp === 'number') row('Link expires', formatEpoch(link.exp));
    var card = el('section', 'card patient', [el('h1', null, model.patient.name || 'Unnamed patient'), dl]);
    card.id = 'patient';
    return card;
  }

  /** The anchor of a section, for the jump bar. */
  function sectionId(s, i) {
    return 'section-' + (str(s.code).replace(/[^A-Za-z0-9-]/g, '') || String(i));
  }

  /**
   * A section as a card whose body folds away: `<details open>` with the title as its
   * summary, so a long summary can be closed down section by section.
   */
  function renderSection(s, i) {
    var fold = document.createElement('details');
    fold.open = true;
    fold.appendChild(el('summary', null, [el('h2', null, s.title)]));
    var card = el('section', 'card section ' + s.kind, [fold]);
    card.id = sectionId(s, i);
    card.setAttribute('data-code', s.code);
    if (s.entries.length) {
      var ul = el('ul');
      s.entries.forEach(function (e) {
        var name = el('div', 'entry-name', e.text);
        if (e.flag) name.appendChild(el('span', 'badge', e.flag));
        var details = el('div', 'details', e.details.map(function (d) {
          return el('span', null, d);
        }));
        var open = null;
        if (e.file) {
          // The file, from the summary itself: nothing is fetched to open it.
          open = el('a', 'download', 'Save the file (' + e.file.name + ')');
          try {
            open.href = URL.createObjectURL(new Blob([decodeB64(e.file.data)], { type: e.file.type }));
            open.setAttribute('download', e.file.name);
          } catch (err) {
            open = el('p', 'empty', 'The file is damaged and cannot be opened.');
          }
        }
        ul.appendChild(el('li', null, [name, e.details.length ? details : null, open]));
      });
      fold.appendChild(ul);
    }
    if (s.narrative.length) {
      var text = el('div', 'narrative', s.narrative.map(function (line) {
        return el('p', null, line);
      }));
      if (s.entries.length) fold.appendChild(el('p', 'source', 'From the summary text:'));
      fold.appendChild(text);
    }
    if (s.empty) fold.appendChild(el('p', 'empty', s.empty));
    return card;
  }

  var SVG = 'http://www.w3.org/2000/svg';

  function svg(tag, attrs) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (a) { node.setAttribute(a, String(attrs[a])); });
    return node;
  }

  /**
   * A small line chart of a key result's values, oldest to newest, scaled to their
   * own range; the newest value is a dot. Described in words for screen readers.
   */
  function chart(result) {
    var w = 120;
    var h = 36;
    var pad = 4;
    var values = result.points.map(function (p) { return p.value; });
    var lo = Math.min.apply(null, values);
    var hi = Math.max.apply(null, values);
    var span = hi - lo || 1;
    var step = values.length > 1 ? (w - 2 * pad) / (values.length - 1) : 0;
    var xy = values.map(function (v, i) {
      var x = pad + i * step;
      var y = hi === lo ? h / 2 : h - pad - ((v - lo) / span) * (h - 2 * pad);
      return [Math.round(x * 10) / 10, Math.round(y * 10) / 10];
    });
    var first = result.points[0];
    var last = result.points[result.points.length - 1];
    var words = result.name + ': ' + result.points.length + ' values from ' + formatDate(first.date.slice(0, 10)) +
      ' to ' + formatDate(last.date.slice(0, 10)) + ', ' + (last.second === null ? '' : 'systolic ') +
      'lowest ' + lo + ', highest ' + hi + ', latest ' + last.text;
    var box = svg('svg', { viewBox: '0 0 ' + w + ' ' + h, width: w, height: h, role: 'img', 'aria-label': words, 'class': 'spark' });
    var title = svg('title', {});
    title.textContent = words;
    box.appendChild(title);
    box.appendChild(svg('polyline', {
      points: xy.map(function (p) { return p.join(','); }).join(' ')
    }));
    var end = xy[xy.length - 1];
    box.appendChild(svg('circle', { cx: end[0], cy: end[1], r: 2.5 }));
    return box;
  }

  /** The key results card: a row per result, its newest value, and a chart of its last values. */
  function renderResults(results) {
    var fold = document.createElement('details');
    fold.open = true;
    fold.appendChild(el('summary', null, [el('h2', null, 'Key results over time')]));
    var ul = el('ul');
    results.forEach(function (r) {
      var last = r.points[r.points.length - 1];
      var details = [formatDate(last.date)];
      if (r.total > 1) {
        details.push(r.total + ' values since ' + formatDate(r.since.slice(0, 7)) +
          (r.total > r.points.length ? ' (the last ' + r.points.length + ' drawn)' : ''));
      }
      if (r.otherUnits) details.push(r.otherUnits + ' in another unit not drawn');
      var row = el('li', 'key-result', [
        el('div', 'entry-name', r.name + ': ' + last.text),
        el('div', 'details', details.map(function (d) { return el('span', null, d); }))
      ]);
      if (r.points.length > 1) row.appendChild(chart(r));
      ul.appendChild(row);
    });
    fold.appendChild(ul);
    var card = el('section', 'card section results-over-time', [fold]);
    card.id = 'key-results';
    return card;
  }

  function renderSummary(app, model, link) {
    clear(app);
    var summary = el('div', 'summary');
    summary.id = 'summary';
    summary.appendChild(renderPatient(model, link));
    var cards = model.sections.map(function (s, i) {
      return renderSection(s, i);
    });
    // Key results drawn over time, after the sections, when any has two values.
    if (model.results.some(function (r) { return r.points.length > 1; })) {
      cards.push(renderResults(model.results));
    }
    // A jump bar when there is more than a screen of sections.
    if (cards.length > 3) {
      var jump = el('nav', 'jump', cards.map(function (card) {
        var a = el('a', null, card.querySelector('h2').textContent);
        a.href = '#' + card.id;
        return a;
      }));
      jump.setAttribute('aria-label', 'Sections');
      summary.appendChild(jump);
    }
    cards.forEach(function (card) {
      summary.appendChild(card);
    });
    app.appendChild(summary);
    document.title = (model.patient.name ? model.patient.name + ' · ' : '') + 'Patient summary';
  }

  function showFatal(app, err, link, state) {
    clear(app);
    app.appendChild(el('h1', null, 'Patient summary'));
    app.appendChild(messageBox(messageFor(err, link, state), err && err.kind));
  }

  function field(labelText, id, type, value) {
    var input = document.createElement('input');
    input.id = id;
    input.name = id;
    input.type = type;
    if (value) input.value = value;
    input.setAttribute('autocomplete', 'off');
    input.setAttribute('autocapitalize', 'off');
    input.setAttribute('spellcheck', 'false');
    var label = el('label', null, labelText);
    label.setAttribute('for', id);
    return [label, input];
  }

  function showForm(app, link) {
    var state = { lockedHere: false };
    clear(app);
    var card = el('section', 'card');
    card.appendChild(el('h1', null, 'Patient summary shared with you'));
    if (link.label) card.appendChild(el('p', 'label', link.label));
    if (typeof link.exp === 'number') card.appendChild(el('p', 'label', 'Shared until ' + formatEpoch(link.exp)));
    var form = el('form');
    form.setAttribute('novalidate', '');
    // Who opens it is the clinician's to say: the patient sees it in their log.
    field('Your name (the patient sees who opened their summary)', 'recipient', 'text').forEach(function (n) {
      form.appendChild(n);
    });
    field('Your role or team, e.g. A&E doctor (optional)', 'role', 'text').forEach(function (n) {
      form.appendChild(n);
    });
    var needsPasscode = link.flag.indexOf('P') >= 0 && link.flag.indexOf('U') < 0;
    if (needsPasscode) {
      field('Passcode (ask the patient)', 'passcode', 'password').forEach(function (n) {
        form.appendChild(n);
      });
    }
    var button = el('button', null, 'View summary');
    button.id = 'open';
    button.type = 'submit';
    form.appendChild(button);
    var status = el('p', 'status');
    status.id = 'status';
    status.setAttribute('aria-live', 'polite');
    card.appendChild(form);
    card.appendChild(status);
    app.appendChild(card);

    form.addEventListener('submit', function (event) {
      event.preventDefault();
      var old = document.getElementById('message');
      if (old) old.parentNode.removeChild(old);
      var name = plainRecipient(document.getElementById('recipient').value);
      var role = plainRecipient(document.getElementById('role').value);
      if (!name) {
        card.insertBefore(messageBox('Enter your name: the patient sees who opened their summary.', 'name-missing'), form);
        return;
      }
      var recipient = role ? (name + ', ' + role).slice(0, 200) : name;
      var passcodeInput = document.getElementById('passcode');
      var passcode = passcodeInput ? passcodeInput.value : '';
      if (needsPasscode && !passcode) {
        card.insertBefore(messageBox('Enter the passcode the patient gave you.', 'passcode-missing'), form);
        return;
      }
      if (isExpired(link, Date.now())) {
        showFatal(app, new ViewerError('expired'), link, state);
        return;
      }
      button.disabled = true;
      status.textContent = 'Fetching the summary…';
      open(link, { recipient: recipient, passcode: passcode })
        .then(function (bundle) {
          renderSummary(app, summarise(bundle), link);
        })
        .catch(function (err) {
          button.disabled = false;
          status.textContent = '';
          if (err && err.kind === 'passcode') {
            if (err.extra.remaining === 0) state.lockedHere = true;
            if (passcodeInput) passcodeInput.value = '';
            card.insertBefore(messageBox(messageFor(err, link, state), 'passcode'), form);
            if (state.lockedHere) button.disabled = true;
            return;
          }
          if (err && (err.kind === 'network' || err.kind === 'busy')) {
            card.insertBefore(messageBox(messageFor(err, link, state), err.kind), form);
            return;
          }
          showFatal(app, err instanceof ViewerError ? err : new ViewerError('content'), link, state);
        });
    });
  }

  /** Fetch, decrypt and parse the link's file: the Bundle. */
  async function open(link, opts) {
    var jwe = await retrieve(link, opts, window.fetch.bind(window));
    var decrypted = await decryptJwe(jwe, link.key);
    return parseJson(decrypted.plaintext);
  }

  /** Start the page: read the fragment, then ask for a name (and passcode). */
  function start() {
    var app = document.getElementById('app');
    if (!app) return;
    var link;
    try {
      link = parseShlink(window.location.hash);
    } catch (err) {
      showFatal(app, err, null, null);
      return;
    }
    if (isExpired(link, Date.now())) {
      showFatal(app, new ViewerError('expired'), link, null);
      return;
    }
    showForm(app, link);
  }

  return {
    DEFAULT_RECIPIENT: DEFAULT_RECIPIENT,
    ViewerError: ViewerError,
    decodeB64u: decodeB64u,
    parseShlink: parseShlink,
    isExpired: isExpired,
    retrieve: retrieve,
    plainRecipient: plainRecipient,
    decryptJwe: decryptJwe,
    parseJson: parseJson,
    narrativeText: narrativeText,
    formatDate: formatDate,
    summarise: summarise,
    messageFor: messageFor,
    start: start
  };
});
