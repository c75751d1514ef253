/*
 * Stands in for client-node's gen/index.js when its config.js asks for it (see kube-loader.ts):
 * config.js needs these two names, the real index brings every API class and model with them.
 */
export { createConfiguration } from '@kubernetes/client-node/dist/gen/configuration.js';
export { ServerConfiguration } from '@kubernetes/client-node/dist/gen/servers.js';
