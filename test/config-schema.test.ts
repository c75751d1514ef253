import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KEYS, mtuBytes, parseBuckets, parseDurationMs, parseTargets, paths, SCHEMA, type Setting } from '../src/config-schema.js';

test('every default is a value its own setting accepts, and a choice defaults to one of its values', () => {
  for (const key of KEYS) {
    const setting: Setting<unknown> = SCHEMA[key];
    assert.doesNotThrow(() => setting.parse(setting.default), `${key}: default ${JSON.stringify(setting.default)}`);
    if (setting.values) assert.ok(setting.values.includes(setting.default), `${key}: default ${setting.default} is not among ${setting.values.join(', ')}`);
  }
});

test('settings with a flag that may stand alone are exactly the true/false ones', () => {
  const standalone = KEYS.filter((key) => (SCHEMA[key] as Setting<unknown>).standalone);
  assert.deepEqual(standalone, ['probe_self', 'zone_attributes']);
  for (const key of standalone) assert.deepEqual([SCHEMA[key].parse('true'), SCHEMA[key].parse('false')], [true, false]);
});

test('parsers convert as they validate', () => {
  assert.equal(parseDurationMs(' 2h '), 7_200_000);
  assert.equal(parseDurationMs('250µs'), 0.25);
  assert.throws(() => parseDurationMs('1 s'), { message: 'must be a duration with a unit, such as 200ms, 1s or 1.5s' });
  assert.deepEqual(parseTargets(' 10.0.0.1 , ,web=fd00::6'), [
    { name: '10.0.0.1', address: '10.0.0.1' },
    { name: 'web', address: 'fd00::6' },
  ]);
  assert.deepEqual(parseBuckets('0.001, 0.01'), [0.001, 0.01]);
  assert.throws(() => parseBuckets(Array.from({ length: 65 }, (_, i) => String(i + 1)).join(',')), {
    message: 'must have at most 64 boundaries (each one is a series per destination)',
  });
  assert.equal(SCHEMA.outlier_latency.parse('5ms'), 0.005, 'outlier latency in seconds');
  assert.throws(() => SCHEMA.payload_bytes.parse('7'), { message: 'must be at least 8 (the cookie that replies must carry); got 7' });
  assert.equal(SCHEMA.otlp_endpoint.parse(''), '', 'unset stays unset');
});

test('paths: the node network always, the pod network beside it; MTU: 0 (the route) or at least 1280', () => {
  assert.deepEqual(paths('node,pod'), ['node', 'pod']);
  assert.deepEqual(paths('pod, node'), ['node', 'pod']);
  assert.deepEqual(paths('node'), ['node']);
  for (const bad of ['pod', '', 'node,tunnel', 'NODE']) assert.throws(() => paths(bad), /must be node,pod \(both networks\) or node/, bad);
  assert.equal(mtuBytes('0'), 0);
  assert.equal(mtuBytes('1500'), 1500);
  assert.equal(mtuBytes('9001'), 9001);
  assert.throws(() => mtuBytes('576'), /must be 0 \(the route interface MTU\) or at least 1280 bytes/);
  assert.throws(() => mtuBytes('70000'), /whole number from 0/);
  assert.throws(() => mtuBytes('1500.5'), /whole number/);
});
