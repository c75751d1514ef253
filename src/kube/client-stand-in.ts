/*
 * Stands in for two client-node modules (see client.ts). config.js imports gen/index.js for
 * two names; cache.js (ListWatch) imports serializer.js only to serialize label and field
 * selectors, which the agent does not set. The real modules bring every API class and model.
 */
export { createConfiguration } from '@kubernetes/client-node/dist/gen/configuration.js';
export { ServerConfiguration } from '@kubernetes/client-node/dist/gen/servers.js';

export const ObjectSerializer = {
  serialize(value: unknown, type: string): unknown {
    if (type === 'string' && typeof value === 'string') return value;
    throw new Error(`mentat's stand-in for client-node's ObjectSerializer cannot serialize a ${type}`);
  },
};
