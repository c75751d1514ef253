/** What the manifest tests render: the kustomize targets and their variants, kubectl or a skip, the one image entry. */
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { load } from 'js-yaml';
import { need, readRepo } from './render.js';

export const METRICS_PORT = 2112;
export const OPERATOR_COMPONENT = 'deploy/components/prometheus-operator';

export type Variant = 'default' | 'host-network' | 'otlp';
export interface Target {
  readonly dir: string;
  readonly variant: Variant;
  /** With the Prometheus Operator's ServiceMonitor and PrometheusRule. */
  readonly operator: boolean;
}

export const TARGETS: readonly Target[] = [
  { dir: 'deploy', variant: 'default', operator: false },
  { dir: 'deploy/base', variant: 'default', operator: false },
  { dir: 'deploy/overlays/host-network', variant: 'host-network', operator: false },
  { dir: 'deploy/overlays/otlp', variant: 'otlp', operator: false },
  { dir: 'deploy/overlays/prometheus-operator', variant: 'default', operator: true },
];

export function kubectlOf(t: TestContext): string | undefined {
  return need(t, 'kubectl', 'kubectl kustomize renders deploy/');
}

/** The image as deploy/base/kustomization.yaml's `images:` sets it: the one place of the reference. */
export function baseImage(): { name: string; newName: string; newTag: string } {
  const k = load(readRepo('deploy/base/kustomization.yaml')) as { images: { name: string; newName: string; newTag: string }[] };
  assert.equal(k.images.length, 1);
  return k.images[0]!;
}
