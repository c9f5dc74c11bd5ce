/**
 * The package's layering, checked by `npm run check:deps` (part of `npm test`).
 *
 * src/ is the library; providers/ wraps it in process-wide singletons; index.ts and bin/ compose them.
 * test/, bench/ and examples/ sit outside and share helpers through support/. Within src/, cache/ is the
 * core: it declares ports and the adapters (github/, p2p/, store/, proxy/) implement them, so the core
 * never names an adapter.
 *
 * The sources are parsed with swc rather than the TypeScript compiler: dependency-cruiser reads
 * TypeScript's JS API only below 7.0, and this package builds with 7. swc parses the .ts files as written,
 * so `import type` and `export type … from` count as dependencies like any other import.
 */

/** Node built-ins and installed packages: allowed everywhere these rules do not say otherwise. */
const LIBRARIES = ['core', 'npm', 'npm-dev', 'npm-optional', 'npm-peer', 'npm-bundled', 'npm-no-pkg'];

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'A cycle makes load order matter and the modules in it one unit: break it with a port or a shared leaf module.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'no-unresolvable',
      severity: 'error',
      comment: 'An import these checks cannot resolve would pass every rule unseen; fix the path (or install the package).',
      from: {},
      to: { couldNotResolve: true },
    },
    {
      name: 'providers-only-src',
      severity: 'error',
      comment: 'providers/ wraps the library in singletons: it may import src/ and libraries, nothing else in the repository.',
      from: { path: '^providers/' },
      to: { pathNot: '^(src|providers)/', dependencyTypesNot: LIBRARIES, couldNotResolve: false },
    },
    {
      name: 'src-not-outward',
      severity: 'error',
      comment: 'src/ is the library: it never imports the layers built on it (providers/, bin/, index.ts) nor test, bench, example or support code.',
      from: { path: '^src/' },
      to: { path: '^((providers|bin|test|bench|examples|support)/|index\\.ts$)' },
    },
    {
      name: 'cache-core-no-adapters',
      severity: 'error',
      comment: 'src/cache/ declares its ports (ports.ts); github/, p2p/, proxy/ and store/ implement them. The core names none of them.',
      from: { path: '^src/cache/' },
      to: { path: '^src/(github|p2p|proxy|store)/' },
    },
    {
      name: 'p2p-not-github',
      severity: 'error',
      comment: 'The P2P layer moves cache entries between peers; it knows nothing of GitHub (it talks to the cache through its ports).',
      from: { path: '^src/p2p/' },
      to: { path: '^src/github/' },
    },
    {
      name: 'test-only-from-test',
      severity: 'error',
      comment: 'Nothing outside test/ imports test/: code shared with bench/ or examples/ belongs in support/.',
      from: { pathNot: '^test/' },
      to: { path: '^test/' },
    },
  ],
  options: {
    // Every first-party TypeScript source is cruised; the build output, docs, tooling and dot-folders are not.
    exclude: { path: '^(dist|docs|scripts|coverage)/|^\\.[^./]|\\.d\\.ts$' },
    doNotFollow: { path: '^node_modules/' },
    parser: 'swc',
    // Resolution follows tsconfig.json (its `paths` and `baseUrl`, should they appear), read by the resolver's
    // tsconfig-paths plugin. (tsPreCompilationDeps would need TypeScript's API; swc keeps type imports anyway.)
    tsConfig: { fileName: 'tsconfig.json' },
    moduleSystems: ['es6', 'cjs'],
    // Resolve as NodeNext does: packages through their `exports`. (A source's `./x.js` is `./x.ts` on disk:
    // the resolver falls back to .ts by itself.)
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      mainFields: ['module', 'main', 'types', 'typings'],
    },
  },
};
