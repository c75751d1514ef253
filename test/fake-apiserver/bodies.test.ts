/**
 * Request bodies as the fake reads them (bodies.ts): every refused write with the status, reason and
 * message the apiserver sends, and nothing stored; ConfigMaps up to exactly 1 MiB; pods over HTTP
 * as the pod strategy takes them (created Pending, status kept on PUT, only images may change).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import { makePod } from './index.js';
import { CM_PATH, LEASE_PATH, NS, POD_PATH, send, setup } from './test-helpers.js';

/** The apiserver's limit on a ConfigMap's data plus binaryData, keys included. */
const CONFIGMAP_LIMIT_BYTES = 1024 * 1024;

function binary(bytes: number): string {
  return randomBytes(bytes).toString('base64');
}

/** A ConfigMap's JSON. */
function cm(name: string, extra: object = {}): string {
  return JSON.stringify({ metadata: { name }, ...extra });
}

interface RefusedWrite {
  what: string;
  method?: string;
  path?: string;
  body: string;
  contentType?: string;
  status: number;
  reason?: string;
  message?: string | RegExp;
}

/** Writes the apiserver refuses, each with the status, reason and message it answers with. */
const REFUSED_WRITES: RefusedWrite[] = [
  {
    what: 'YAML',
    body: 'metadata: {name: x}',
    contentType: 'application/yaml',
    status: 415,
    reason: 'UnsupportedMediaType',
    message: 'the body of the request was in an unknown format - accepted media types include: application/json',
  },
  { what: 'text', body: cm('x'), contentType: 'text/plain', status: 415, reason: 'UnsupportedMediaType' },
  {
    what: 'bad JSON',
    body: '{"metadata":',
    status: 400,
    reason: 'BadRequest',
    message: /^ConfigMap in version "v1" cannot be handled as a ConfigMap: json parse error/,
  },
  {
    what: 'wrong kind',
    body: JSON.stringify({ kind: 'Secret', metadata: { name: 'x' } }),
    status: 400,
    message: 'the kind in the data (Secret) does not match the expected kind (ConfigMap)',
  },
  {
    what: 'resourceVersion on create',
    body: JSON.stringify({ metadata: { name: 'x', resourceVersion: '5' } }),
    status: 400,
    message: 'resourceVersion should not be set on objects to be created',
  },
  {
    what: 'other namespace',
    body: JSON.stringify({ metadata: { name: 'x', namespace: 'other' } }),
    status: 400,
    message: 'the namespace of the provided object does not match the namespace sent on the request',
  },
  {
    what: 'name not the URL',
    method: 'PUT',
    path: `${CM_PATH}/a`,
    body: cm('b'),
    status: 400,
    message: 'the name of the object (b) does not match the name on the URL (a)',
  },
  {
    what: 'no name',
    body: '{}',
    status: 422,
    reason: 'Invalid',
    message: 'ConfigMap "" is invalid: metadata.name: Required value: name or generateName is required',
  },
  {
    what: 'bad name',
    body: cm('Bad_Name'),
    status: 422,
    reason: 'Invalid',
    message: /^ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must consist of/,
  },
  {
    what: 'bad key',
    body: cm('x', { data: { 'a b': '1' } }),
    status: 422,
    message: /^ConfigMap "x" is invalid: data\[a b\]: Invalid value: "a b": a valid config key/,
  },
  {
    what: 'not base64',
    body: cm('x', { binaryData: { k: 'not base64!' } }),
    status: 400,
    message: /^ConfigMap in version "v1" cannot be handled as a ConfigMap: binaryData\[k\]: illegal base64 data/,
  },
  {
    what: '1 MiB + 1',
    body: cm('big', { binaryData: { k: binary(CONFIGMAP_LIMIT_BYTES) } }),
    status: 422,
    message: 'ConfigMap "big" is invalid: []: Too long: must have at most 1048576 bytes',
  },
  {
    what: 'over 3 MiB',
    body: cm('huge', { data: { k: 'x'.repeat(3 * 1024 * 1024) } }),
    status: 413,
    reason: 'RequestEntityTooLarge',
    message: 'Request entity too large: limit is 3145728',
  },
  {
    what: 'Date, not MicroTime',
    path: LEASE_PATH,
    body: JSON.stringify({ metadata: { name: 'l' }, spec: { renewTime: '2026-01-02T03:04:05.678Z' } }),
    status: 400,
    message:
      'Lease in version "v1" cannot be handled as a Lease: parsing time "2026-01-02T03:04:05.678Z" as "2006-01-02T15:04:05.000000Z07:00": cannot parse ".678Z" as ".000000"',
  },
  { what: 'PATCH', method: 'PATCH', path: `${CM_PATH}/x`, body: '{}', contentType: 'application/merge-patch+json', status: 405, reason: 'MethodNotAllowed' },
  {
    what: 'unknown resource',
    path: `/api/v1/namespaces/${NS}/secrets`,
    body: cm('x'),
    status: 404,
    reason: 'NotFound',
    message: 'the server could not find the requested resource',
  },
  {
    what: 'unsupported field selector',
    method: 'GET',
    path: `${LEASE_PATH}?fieldSelector=spec.holderIdentity%3Da`,
    body: '',
    status: 400,
    message: 'field label not supported: spec.holderIdentity',
  },
];

test('refused writes: status, reason and message as the apiserver sends them, and nothing stored', async (t) => {
  const env = await setup(t);
  const { server } = env;
  for (const c of REFUSED_WRITES) {
    const r = await send(
      server,
      server.token,
      c.method ?? 'POST',
      c.path ?? CM_PATH,
      c.body === '' ? undefined : c.body,
      c.contentType ? { contentType: c.contentType } : {},
    );
    assert.equal(r.status, c.status, `${c.what}: ${JSON.stringify(r.body).slice(0, 300)}`);
    assert.equal(r.body.kind, 'Status', c.what);
    assert.equal(r.body.code, c.status, c.what);
    if (c.reason) assert.equal(r.body.reason, c.reason, c.what);
    if (typeof c.message === 'string') assert.equal(r.body.message, c.message, c.what);
    else if (c.message) assert.match(r.body.message ?? '', c.message, c.what);
  }
  assert.deepEqual(server.listObjects('configmaps'), [], 'nothing refused was stored');
  assert.deepEqual(server.listObjects('leases'), []);
  // Exactly at the limit (key length included) is accepted.
  const atLimit = await send(server, server.token, 'POST', CM_PATH, cm('max', { binaryData: { k: binary(CONFIGMAP_LIMIT_BYTES - 1) } }));
  assert.equal(atLimit.status, 201);
});

test('Pods over HTTP, as the pod strategy takes them: created Pending whatever status is sent; a PUT keeps the status and changes only container images; containers are required', async (t) => {
  const env = await setup(t);
  const { server } = env;
  const sent = makePod({ name: 'p', nodeName: 'node-a', podIPs: ['198.19.1.2'] });
  const created = await send(server, server.token, 'POST', POD_PATH, sent);
  assert.equal(created.status, 201);
  assert.deepEqual((created.body as unknown as V1Pod).status, { phase: 'Pending' }, 'the status is the server own');
  const stored = server.getObject('pods', NS, 'p')!;

  const relabel = await send(server, server.token, 'PUT', `${POD_PATH}/p`, {
    ...stored,
    metadata: { ...stored.metadata, labels: { a: 'b' } },
    status: { phase: 'Running', podIP: '1.2.3.4' },
  });
  assert.equal(relabel.status, 200);
  assert.deepEqual((relabel.body as unknown as V1Pod).status, { phase: 'Pending' }, 'status changes through PUT on the pod are ignored');
  assert.deepEqual(relabel.body.metadata?.labels, { a: 'b' });

  const current = server.getObject('pods', NS, 'p')! as unknown as V1Pod;
  const image = await send(server, server.token, 'PUT', `${POD_PATH}/p`, {
    ...current,
    spec: { ...current.spec, containers: [{ name: 'mentat', image: 'mentat:v2' }] },
  });
  assert.equal(image.status, 200);
  const moved = await send(server, server.token, 'PUT', `${POD_PATH}/p`, { ...current, spec: { ...current.spec, nodeName: 'node-b' } });
  assert.deepEqual([moved.status, moved.body.reason], [422, 'Invalid']);
  assert.match(moved.body.message ?? '', /^Pod "p" is invalid: spec: Forbidden: pod updates may not change fields other than `spec.containers\[\*\]\.image`/);
  assert.equal((server.getObject('pods', NS, 'p') as unknown as V1Pod).spec?.nodeName, 'node-a');

  const empty = await send(server, server.token, 'POST', POD_PATH, { metadata: { name: 'q' }, spec: { containers: [{ name: 'c' }] } });
  assert.deepEqual([empty.status, empty.body.message], [422, 'Pod "q" is invalid: spec.containers[0].image: Required value']);
  const none = await send(server, server.token, 'POST', POD_PATH, { metadata: { name: 'q' }, spec: {} });
  assert.deepEqual([none.status, none.body.message], [422, 'Pod "q" is invalid: spec.containers: Required value']);
  const notList = await send(server, server.token, 'POST', POD_PATH, { metadata: { name: 'q' }, spec: { containers: {} } });
  assert.equal(notList.status, 400);
  assert.equal(server.getObject('pods', NS, 'q'), undefined, 'nothing stored');
});
