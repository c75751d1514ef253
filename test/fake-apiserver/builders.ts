/**
 * Objects for tests to put into the fake API server: what `upsertNode` and `putObject` accept, a
 * minimal Ready node, a node the size a kubelet reports on a cloud VM, and a running pod.
 */
import type { Labels, NodeAddress } from './resources.js';

/**
 * What `upsertNode` accepts: a plain object or a client-node `V1Node`. Only `metadata.name`
 * is required; uid/creationTimestamp/resourceVersion are filled in by the server.
 */
export interface NodeInput {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    uid?: string;
    resourceVersion?: string;
    creationTimestamp?: string | Date;
    deletionTimestamp?: string | Date;
    finalizers?: string[];
    labels?: Labels;
    annotations?: Labels;
  };
  spec?: object;
  status?: object;
}

/** Object metadata a test may give; the server fills in the rest. */
export interface InputMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  creationTimestamp?: string | Date;
  labels?: Labels;
  annotations?: Labels;
}

/** What `putObject` accepts: any object with a metadata.name, a plain one or a client-node model. */
export interface ObjectInput {
  apiVersion?: string;
  kind?: string;
  metadata?: InputMeta;
}

/** Convenience builder for a minimal Ready node with one InternalIP. */
export function makeNode(name: string, internalIP: string, labels?: Labels): NodeInput {
  return {
    metadata: { name, ...(labels ? { labels } : {}) },
    status: {
      addresses: [
        { type: 'InternalIP', address: internalIP },
        { type: 'Hostname', address: name },
      ],
      conditions: [{ type: 'Ready', status: 'True' }],
    },
  };
}

/** What `makePod` builds a pod from; an agent pod has the DaemonSet's pod template labels (test/deploy/render.ts `agentPodLabels`). */
export interface PodInput {
  name: string;
  labels?: Labels;
  /** spec.nodeName: the node the pod is bound to (absent: not yet scheduled). */
  nodeName?: string;
  /** status.podIPs in order; status.podIP is the first, as the kubelet reports them. */
  podIPs?: readonly string[];
  /** status.phase, Running by default. */
  phase?: string;
  hostNetwork?: boolean;
  creationTimestamp?: string;
}

/** A pod as the kubelet leaves it once running: one container, the node it is bound to, its IPs. */
export function makePod(input: PodInput): ObjectInput & { spec: object; status: object } {
  const ips = input.podIPs ?? [];
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: input.name,
      ...(input.labels ? { labels: input.labels } : {}),
      ...(input.creationTimestamp ? { creationTimestamp: input.creationTimestamp } : {}),
    },
    spec: {
      containers: [{ name: 'mentat', image: 'mentat:test' }],
      ...(input.nodeName !== undefined ? { nodeName: input.nodeName } : {}),
      ...(input.hostNetwork ? { hostNetwork: true } : {}),
      restartPolicy: 'Always',
      schedulerName: 'default-scheduler',
      serviceAccountName: 'mentat',
    },
    status: {
      phase: input.phase ?? 'Running',
      ...(ips.length > 0 ? { podIP: ips[0], podIPs: ips.map((ip) => ({ ip })) } : {}),
    },
  };
}

/**
 * A node the size a kubelet reports on a cloud VM (about 10 KB of JSON: labels, annotations, five
 * conditions, 40 cached images, capacity, nodeInfo), for measuring memory during a list.
 */
export function makeRealisticNode(name: string, internalIP: string, index: number): NodeInput {
  return {
    metadata: { name, ...realisticLabels(name, internalIP, index) },
    spec: { providerID: `aws:///eu-west-1a/i-${index.toString(16).padStart(17, '0')}`, podCIDR: `100.64.${index >> 8}.0/24` },
    status: realisticStatus(name, internalIP, index),
  };
}

/** The labels and annotations of an EKS node. */
function realisticLabels(name: string, internalIP: string, index: number): { labels: Labels; annotations: Labels } {
  const zone = `zone-${index % 3}`;
  return {
    labels: {
      'kubernetes.io/hostname': name,
      'kubernetes.io/os': 'linux',
      'kubernetes.io/arch': 'amd64',
      'node.kubernetes.io/instance-type': 'm6i.2xlarge',
      'topology.kubernetes.io/region': 'eu-west-1',
      'topology.kubernetes.io/zone': zone,
      'beta.kubernetes.io/os': 'linux',
      'beta.kubernetes.io/arch': 'amd64',
      'beta.kubernetes.io/instance-type': 'm6i.2xlarge',
      'failure-domain.beta.kubernetes.io/region': 'eu-west-1',
      'failure-domain.beta.kubernetes.io/zone': zone,
      'eks.amazonaws.com/nodegroup': `ng-${index % 5}`,
      'eks.amazonaws.com/capacityType': 'ON_DEMAND',
    },
    annotations: {
      'node.alpha.kubernetes.io/ttl': '0',
      'volumes.kubernetes.io/controller-managed-attach-detach': 'true',
      'alpha.kubernetes.io/provided-node-ip': internalIP,
      'csi.volume.kubernetes.io/nodeid': JSON.stringify({ 'ebs.csi.aws.com': `i-${index.toString(16).padStart(17, '0')}` }),
    },
  };
}

/** A kubelet's status of a healthy EKS node, with its cached images. */
function realisticStatus(name: string, internalIP: string, index: number): object {
  const images = Array.from({ length: 40 }, (_, i) => ({
    names: [
      `registry.example.com/team-${i % 7}/service-${i}@sha256:${(index * 40 + i).toString(16).padStart(64, '0')}`,
      `registry.example.com/team-${i % 7}/service-${i}:v1.${i}.${index % 10}`,
    ],
    sizeBytes: 20_000_000 + i * 1_234_567,
  }));
  const condition = (type: string, status: string, reason: string) => ({
    type,
    status,
    reason,
    message: `kubelet reports ${reason}`,
    lastHeartbeatTime: '2026-11-25T10:00:00Z',
    lastTransitionTime: '2026-11-01T08:00:00Z',
  });
  const addresses: NodeAddress[] = [
    { type: 'InternalIP', address: internalIP },
    { type: 'InternalDNS', address: `${name}.eu-west-1.compute.internal` },
    { type: 'Hostname', address: name },
  ];
  return {
    addresses,
    conditions: [
      condition('MemoryPressure', 'False', 'KubeletHasSufficientMemory'),
      condition('DiskPressure', 'False', 'KubeletHasNoDiskPressure'),
      condition('PIDPressure', 'False', 'KubeletHasSufficientPID'),
      condition('Ready', 'True', 'KubeletReady'),
      condition('NetworkUnavailable', 'False', 'RouteCreated'),
    ],
    capacity: { cpu: '8', 'ephemeral-storage': '104845292Ki', 'hugepages-1Gi': '0', 'hugepages-2Mi': '0', memory: '32366572Ki', pods: '58' },
    allocatable: { cpu: '7910m', 'ephemeral-storage': '95551679124', 'hugepages-1Gi': '0', 'hugepages-2Mi': '0', memory: '31349740Ki', pods: '58' },
    daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
    nodeInfo: {
      machineID: index.toString(16).padStart(32, '0'),
      systemUUID: `ec2${index.toString(16).padStart(29, '0')}`,
      bootID: `b${index.toString(16).padStart(31, '0')}`,
      kernelVersion: '6.1.112-124.190.amzn2023.x86_64',
      osImage: 'Amazon Linux 2023.6.20241121',
      containerRuntimeVersion: 'containerd://1.7.23',
      kubeletVersion: 'v1.31.2-eks-94953ac',
      kubeProxyVersion: 'v1.31.2-eks-94953ac',
      operatingSystem: 'linux',
      architecture: 'amd64',
    },
    images,
  };
}
