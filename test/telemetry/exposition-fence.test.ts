/** The fence around PrometheusSerializer (the top of src/telemetry/exposition.ts): it says what moved when exporter-prometheus changes. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { SERIALIZER_FENCED_VERSION, serializer } from '../../src/telemetry/exposition.js';
import { PullReader } from '../../src/telemetry/pull-reader.js';

const PACKAGE = '@opentelemetry/exporter-prometheus';

test('the installed exporter-prometheus is the version the serializer fence was written for', () => {
  // The package exports no package.json; it sits beside dist/ of the resolved entry point.
  const manifest = new URL('../package.json', import.meta.resolve(PACKAGE));
  const { version } = JSON.parse(readFileSync(manifest, 'utf8')) as { version: string };
  assert.equal(
    version,
    SERIALIZER_FENCED_VERSION,
    `${PACKAGE} ${version} is installed: check PrometheusSerializer's positional arguments in src/telemetry/exposition.ts (read from ${SERIALIZER_FENCED_VERSION}), then update SERIALIZER_FENCED_VERSION`,
  );
});

async function oneCounter(): Promise<ResourceMetrics> {
  const reader = new PullReader();
  const provider = new MeterProvider({ resource: resourceFromAttributes({ 'service.name': 'mentat' }), readers: [reader] });
  provider.getMeter('mentat').createCounter('probes').add(1, { result: 'success' });
  const { resourceMetrics } = await reader.collect();
  await provider.shutdown();
  return resourceMetrics;
}

test('each named serializer option does what its name says: the positional order still fits', async () => {
  const metrics = await oneCounter();
  const base = { appendTimestamp: false, withoutTargetInfo: true, withoutScopeInfo: true } as const;
  const text = (options: Parameters<typeof serializer>[0]) => serializer(options).serialize(metrics);
  const moved = (option: string) => `${option} no longer does what its name says: PrometheusSerializer's arguments moved (src/telemetry/exposition.ts)`;
  const sample = (t: string) => t.split('\n').find((l) => l.startsWith('probes_total') || l.startsWith('x_probes_total')) ?? '';
  assert.equal(sample(text(base)), 'probes_total{result="success"} 1', 'the baseline sample');
  assert.match(sample(text({ ...base, appendTimestamp: true })), /^probes_total\{result="success"\} 1 \d+$/, moved('appendTimestamp'));
  assert.match(text({ ...base, withoutTargetInfo: false }), /^target_info\{service_name="mentat"/m, moved('withoutTargetInfo'));
  assert.doesNotMatch(text(base), /target_info/, moved('withoutTargetInfo'));
  assert.match(sample(text({ ...base, withoutScopeInfo: false })), /otel_scope_name="mentat"/, moved('withoutScopeInfo'));
  assert.match(sample(text({ ...base, prefix: 'x' })), /^x_probes_total/, moved('prefix'));
  assert.match(sample(text({ ...base, withResourceConstantLabels: /service/ })), /service_name="mentat"/, moved('withResourceConstantLabels'));
});
