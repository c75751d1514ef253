/**
 * Request bodies as the apiserver reads them: JSON only, up to its size limit, decoded into an
 * object of the route's kind with typed fields (400), validated (422 Invalid: names, ConfigMap
 * keys and size, pod containers), pods taken as the pod strategy takes them, and the
 * preconditions of a DELETE.
 */
import type { IncomingMessage } from 'node:http';
import { ApiError, badRequest, jsonEqual, statusBody, type JsonObject, type ResourceType, type StoredObject } from './resources.js';
import type { Preconditions } from './store.js';

/** A JSON value as the apiserver prints it in a message: strings bare, anything else as JSON. */
function asText(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** The apiserver's default --max-request-body-bytes (3 MiB). */
const MAX_BODY_BYTES = 3 * 1024 * 1024;

/** Reads a request body up to the apiserver's limit. */
export function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_BODY_BYTES) chunks.push(c);
    });
    req.on('end', () => {
      if (size > MAX_BODY_BYTES) reject(new ApiError(statusBody(413, 'RequestEntityTooLarge', `Request entity too large: limit is ${MAX_BODY_BYTES}`)));
      else resolve(Buffer.concat(chunks).toString('utf8'));
    });
    req.on('error', reject);
  });
}

const MICRO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(?:Z|[+-]\d{2}:\d{2})$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const CONFIG_KEY = /^[-._a-zA-Z0-9]+$/;
/** The apiserver's limit on a ConfigMap's data plus binaryData (keys included). */
const MAX_CONFIGMAP_BYTES = 1024 * 1024;

/**
 * Parses a body as the apiserver's JSON decoder would: an object of the route's kind whose typed
 * fields decode (a ConfigMap's data are strings and binaryData base64; a Lease's times are
 * MicroTime, exactly six fractional digits, which a JavaScript Date's toJSON is not).
 */
export function decodeObject(type: ResourceType, text: string): JsonObject {
  const cannot = (why: string): ApiError => badRequest(`${type.kind} in version "v1" cannot be handled as a ${type.kind}: ${why}`);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (err) {
    throw cannot(`json parse error: ${(err as Error).message}`);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw cannot('the body is not a JSON object');
  const obj = body as JsonObject;
  if (obj['apiVersion'] !== undefined && obj['apiVersion'] !== type.apiVersion) {
    throw badRequest(`the API version in the data (${asText(obj['apiVersion'])}) does not match the expected API version (${type.apiVersion})`);
  }
  if (obj['kind'] !== undefined && obj['kind'] !== type.kind) {
    throw badRequest(`the kind in the data (${asText(obj['kind'])}) does not match the expected kind (${type.kind})`);
  }
  const meta = obj['metadata'];
  if (meta !== undefined && (typeof meta !== 'object' || meta === null || Array.isArray(meta))) throw cannot('metadata is not an object');
  if (type.resource === 'configmaps') {
    for (const [field, check] of [
      ['data', (v: unknown) => typeof v === 'string'],
      ['binaryData', (v: unknown) => typeof v === 'string' && BASE64.test(v)],
    ] as const) {
      const map = obj[field];
      if (map === undefined || map === null) continue;
      if (typeof map !== 'object' || Array.isArray(map)) throw cannot(`json: cannot unmarshal into Go struct field ConfigMap.${field} of type map[string]`);
      for (const [k, v] of Object.entries(map)) if (!check(v)) throw cannot(`${field}[${k}]: ${field === 'data' ? 'not a string' : 'illegal base64 data'}`);
    }
  }
  if (type.resource === 'pods') {
    const spec = obj['spec'];
    if (spec !== undefined && spec !== null && (typeof spec !== 'object' || Array.isArray(spec)))
      throw cannot('json: cannot unmarshal into Go struct field Pod.spec of type v1.PodSpec');
    const containers = (spec as JsonObject | undefined)?.['containers'];
    if (containers !== undefined && containers !== null && !Array.isArray(containers)) {
      throw cannot('json: cannot unmarshal into Go struct field PodSpec.spec.containers of type []v1.Container');
    }
  }
  if (type.resource === 'leases') {
    const spec = obj['spec'] as JsonObject | undefined;
    for (const field of ['acquireTime', 'renewTime']) {
      const v = spec?.[field];
      if (v !== undefined && v !== null && (typeof v !== 'string' || !MICRO_TIME.test(v))) {
        throw cannot(
          `parsing time ${JSON.stringify(v)} as "2006-01-02T15:04:05.000000Z07:00": cannot parse ${JSON.stringify(asText(v).slice(19))} as ".000000"`,
        );
      }
    }
  }
  return obj;
}

/** Validation the apiserver answers with 422 Invalid. */
export function validateObject(type: ResourceType, obj: JsonObject, name: string): void {
  const causes: Array<{ reason: string; message: string; field: string }> = [];
  const invalid = (field: string, value: string, why: string): void => {
    causes.push({ reason: 'FieldValueInvalid', message: `Invalid value: ${JSON.stringify(value)}: ${why}`, field });
  };
  if (name === '') {
    causes.push({ reason: 'FieldValueRequired', message: 'Required value: name or generateName is required', field: 'metadata.name' });
  } else if (name.length > 253 || !DNS_SUBDOMAIN.test(name)) {
    invalid(
      'metadata.name',
      name,
      "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
    );
  }
  if (type.resource === 'configmaps') {
    const data = (obj['data'] ?? {}) as Record<string, string>;
    const binary = (obj['binaryData'] ?? {}) as Record<string, string>;
    let size = 0;
    for (const [field, map, bytes] of [
      ['data', data, (v: string) => Buffer.byteLength(v)],
      ['binaryData', binary, (v: string) => Buffer.from(v, 'base64').length],
    ] as const) {
      for (const [k, v] of Object.entries(map)) {
        size += k.length + bytes(v);
        if (!CONFIG_KEY.test(k)) {
          invalid(
            `${field}[${k}]`,
            k,
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
          );
        }
      }
    }
    for (const k of Object.keys(binary)) if (Object.hasOwn(data, k)) invalid(`data[${k}]`, k, 'duplicate of key present in binaryData');
    if (size > MAX_CONFIGMAP_BYTES)
      causes.push({ reason: 'FieldValueTooLong', message: `Too long: must have at most ${MAX_CONFIGMAP_BYTES} bytes`, field: '[]' });
  }
  if (type.resource === 'pods') {
    const containers = ((obj['spec'] as JsonObject | undefined)?.['containers'] ?? []) as unknown[];
    if (containers.length === 0) causes.push({ reason: 'FieldValueRequired', message: 'Required value', field: 'spec.containers' });
    for (const [i, c] of containers.entries()) {
      const container = (typeof c === 'object' && c !== null ? c : {}) as JsonObject;
      for (const field of ['name', 'image']) {
        if (typeof container[field] !== 'string' || container[field] === '') {
          causes.push({ reason: 'FieldValueRequired', message: 'Required value', field: `spec.containers[${i}].${field}` });
        }
      }
    }
  }
  if (causes.length > 0) {
    const message = `${type.kind} ${JSON.stringify(name)} is invalid: ${causes.map((c) => `${c.field}: ${c.message}`).join(', ')}`;
    throw new ApiError(statusBody(422, 'Invalid', message, { name, ...(type.group ? { group: type.group } : {}), kind: type.kind, causes }));
  }
}

/** What the apiserver stores of a pod created over HTTP: its status is the server's (Pending), never the client's. */
export function podForCreate(body: JsonObject): JsonObject {
  return { ...body, status: { phase: 'Pending' } };
}

const POD_UPDATE_FORBIDDEN =
  'Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)';

/**
 * A PUT on a pod as the apiserver's pod strategy takes it: the status is kept (it changes through
 * pods/status, which the fake does not serve), and the spec may change only in its container images
 * (stricter than the apiserver, which also lets a few scheduling fields change).
 */
export function podForUpdate(prev: StoredObject, body: JsonObject, name: string): JsonObject {
  const imageless = (spec: unknown): unknown => {
    if (typeof spec !== 'object' || spec === null) return spec;
    const s = spec as JsonObject;
    const containers = Array.isArray(s['containers']) ? (s['containers'] as JsonObject[]).map((c) => ({ ...c, image: undefined })) : s['containers'];
    return JSON.parse(JSON.stringify({ ...s, containers })) as unknown;
  };
  if (!jsonEqual(imageless(prev['spec']), imageless(body['spec']))) {
    const causes = [{ reason: 'FieldValueForbidden', message: POD_UPDATE_FORBIDDEN, field: 'spec' }];
    throw new ApiError(statusBody(422, 'Invalid', `Pod ${JSON.stringify(name)} is invalid: spec: ${POD_UPDATE_FORBIDDEN}`, { name, kind: 'Pod', causes }));
  }
  const next: JsonObject = { ...body };
  if (prev['status'] === undefined) delete next['status'];
  else next['status'] = prev['status'];
  return next;
}

/** DeleteOptions.preconditions from a DELETE body (empty: none). */
export function preconditions(text: string): Preconditions {
  if (text.trim() === '') return {};
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (err) {
    throw badRequest(`DeleteOptions in version "v1" cannot be handled as a DeleteOptions: json parse error: ${(err as Error).message}`);
  }
  const pre = typeof body === 'object' && body !== null ? (body as JsonObject)['preconditions'] : undefined;
  if (typeof pre !== 'object' || pre === null) return {};
  const { uid, resourceVersion } = pre as JsonObject;
  return { ...(typeof uid === 'string' ? { uid } : {}), ...(typeof resourceVersion === 'string' ? { resourceVersion } : {}) };
}

/** Whether a request body is JSON; the apiserver takes one without a Content-Type as JSON. */
export function isJson(req: IncomingMessage): boolean {
  // No Content-Type is taken as JSON, the apiserver's first supported media type.
  const ct = req.headers['content-type'];
  return ct === undefined || ct.split(';')[0]?.trim().toLowerCase() === 'application/json';
}
