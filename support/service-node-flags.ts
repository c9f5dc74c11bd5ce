/** The service's Node flags, for the specs and benchmarks (they live with the CLI, which warns when they are missing). */
export { SERVICE_NODE_FLAGS } from '../bin/node-flags.js';
