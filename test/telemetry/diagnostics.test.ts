import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { diag } from '@opentelemetry/api';
import { globalErrorHandler, loggingErrorHandler, setGlobalErrorHandler } from '@opentelemetry/core';
import type { Log } from '../../src/log.js';
import { routeOtelDiagnostics } from '../../src/telemetry/diagnostics.js';

after(() => {
  diag.disable();
  setGlobalErrorHandler(loggingErrorHandler());
});

test("OpenTelemetry's complaints become rate-limited warnings in the agent's log, export failures one line without a stack", () => {
  const lines: Array<[object, string]> = [];
  const log: Log = { debug() {}, info() {}, error() {}, warn: (fields, message) => lines.push([fields, message]) };
  let now = 0;
  routeOtelDiagnostics(log, () => now);
  diag.warn('metric name is invalid', 'x!y');
  diag.warn('metric name is invalid', 'x!y');
  diag.info('not logged: below warn');
  globalErrorHandler(new Error('connect ECONNREFUSED'));
  globalErrorHandler(new Error('connect ECONNREFUSED'));
  now = 60_000;
  globalErrorHandler(new Error('connect ECONNREFUSED'));
  assert.deepEqual(lines, [
    [{ detail: 'x!y' }, 'OpenTelemetry: metric name is invalid'],
    [{ err: 'connect ECONNREFUSED' }, 'OTLP export failed; retrying at the next interval'],
    [{ err: 'connect ECONNREFUSED', suppressed: 1 }, 'OTLP export failed; retrying at the next interval'],
  ]);
});
