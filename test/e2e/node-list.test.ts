/**
 * The published node list with real agents, one per network namespace, against the in-repo API
 * server: one agent elected through the Lease reads Nodes and publishes; the others read only the
 * lease and the list; the publisher killed (SIGKILL: no release) is replaced within the lease
 * duration while every agent keeps probing; a node added afterwards reaches every agent.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { makeNode, sumLoad } from '../support/fake-apiserver.js';
import { sampleValue } from '../support/exposition.js';
import { until } from '../support/fault-client.js';
import { startMeshCluster } from '../support/mesh-cluster.js';
import { requireNetns } from '../support/netns.js';

const LEASE_S = 5;

test(
  '5 agents: one publisher reads Nodes, the rest read the list; the publisher killed is replaced and no agent stops probing',
  { timeout: 180_000 },
  async (t) => {
    if (!requireNetns(t)) return;
    const dir = await mkdtemp(join(tmpdir(), 'mentat-node-list-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const mesh = await startMeshCluster(t, {
      agents: 5,
      zone: (i) => (i % 2 === 1 ? 'zone-a' : 'zone-b'),
      dir,
      userPerAgent: true,
      env: { POD_NAMESPACE: 'mentat', MENTAT_LEASE_DURATION: `${LEASE_S}s`, MENTAT_PROBE_INTERVAL: '500ms' },
    });
    const names = [...mesh.nodes.keys()];
    for (const name of names) mesh.start(name);
    const holder = async () =>
      ((await mesh.control.getObject('leases', 'mentat', 'mentat-node-list')) as { spec?: { holderIdentity?: string } } | undefined)?.spec?.holderIdentity;
    const knownBy = async (name: string) => sampleValue(await mesh.agents.get(name)!.scrape(), 'mentat_targets', { state: 'known' });
    await until('every agent knows the other 4 nodes', 60_000, async () => ((await Promise.all(names.map(knownBy))).every((k) => k === 4) ? true : undefined), {
      everyMs: 500,
    });
    const leader = (await holder())!.replace(/^mentat-/, '');
    assert.ok(names.includes(leader), `the lease holder is an agent: ${leader}`);

    // Kubelets report their nodes' status (here every 2 s): only the publisher receives those updates;
    // the others read the lease and the shards, which the updates do not change.
    await mesh.control.heartbeatsStart(2000);
    await mesh.control.resetLoad();
    await new Promise((r) => setTimeout(r, 3 * LEASE_S * 1000));
    const load = await mesh.control.load();
    await mesh.control.heartbeatsStop();
    for (const name of names) {
      const nodes = sumLoad(load, { user: `agent-${name}`, resource: 'nodes' });
      if (name === leader) assert.ok(nodes.bytes > 1000, `the publisher watches Nodes: ${nodes.bytes} B`);
      else assert.equal(nodes.requests, 0, `${name} reads no Node`);
    }
    t.diagnostic(
      `per agent over ${3 * LEASE_S} s: ${names.map((n) => `${n}${n === leader ? ' (publisher)' : ''} ${sumLoad(load, { user: `agent-${n}` }).bytes} B in ${sumLoad(load, { user: `agent-${n}` }).requests} requests`).join('; ')}`,
    );

    // The publisher dies without giving up the lease: another takes over within the lease duration (plus its turn).
    await mesh.agents.get(leader)!.kill();
    mesh.agents.delete(leader);
    const killedAt = Date.now();
    const rest = names.filter((n) => n !== leader);
    const before = new Map(
      await Promise.all(
        rest.map(
          async (n) =>
            [
              n,
              sampleValue(await mesh.agents.get(n)!.scrape(), 'node_latency_probes_total', {
                destination_node: rest.find((x) => x !== n)!,
                result: 'success',
              }) ?? 0,
            ] as const,
        ),
      ),
    );
    const next = await until(
      'another agent holds the lease',
      (LEASE_S + 10) * 1000,
      async () => {
        const h = await holder();
        return h && h !== `mentat-${leader}` ? h : undefined;
      },
      { everyMs: 250 },
    );
    const tookMs = Date.now() - killedAt;
    t.diagnostic(`publisher ${leader} killed; ${next} took over after ${tookMs} ms (lease ${LEASE_S} s)`);
    assert.ok(tookMs < (LEASE_S + 6) * 1000, `taken over within the lease duration and the first turns: ${tookMs} ms`);
    // Every agent kept its nodes and kept probing throughout.
    for (const n of rest) {
      const s = await mesh.agents.get(n)!.scrape();
      assert.equal(sampleValue(s, 'mentat_targets', { state: 'known' }), 4, `${n} kept its nodes`);
      const probes = sampleValue(s, 'node_latency_probes_total', { destination_node: rest.find((x) => x !== n)!, result: 'success' }) ?? 0;
      assert.ok(probes > before.get(n)!, `${n} kept probing`);
    }
    // The new publisher publishes: a node added now reaches every agent within 30 s.
    // The infra namespace's address: inside the test's network, and no agent's own.
    await mesh.control.upsertRaw(makeNode('node-late', mesh.infra.ipv4));
    const addedAt = Date.now();
    await until('the added node reaches every agent', 30_000, async () => ((await Promise.all(rest.map(knownBy))).every((k) => k === 5) ? true : undefined), {
      everyMs: 500,
      context: () => rest.map((n) => `${n}: ${mesh.agents.get(n)!.describe()}`).join('\n'),
    });
    t.diagnostic(`a node added after the takeover reached every agent in ${Date.now() - addedAt} ms`);
  },
);
