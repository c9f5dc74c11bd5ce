'use strict';
// github-p2p-cache is an ES module package. This file answers `require('github-p2p-cache')` with a clear error
// instead of Node's ERR_PACKAGE_PATH_NOT_EXPORTED.
const error = new Error(
  "github-p2p-cache is ESM only: use import() / await import('github-p2p-cache') from CommonJS, " +
  "or `import { getGlobalCache } from 'github-p2p-cache'` from an ES module (\"type\": \"module\" or a .mjs/.mts file).",
);
error.code = 'ERR_REQUIRE_ESM';
throw error;
