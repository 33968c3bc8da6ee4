import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * The words of the life of a task (api/lifecycle/states.ts): task statuses, endpoint states, history
 * events. Outside that module the server side names them by its constants, never as literals, whether a
 * whole string or quoted inside SQL.
 */
const STATE_WORDS = [
  'CREATED', 'SENT', 'DONE', 'INCOMPLETE', 'CANCELLED', 'STOPPED',
  'queued', 'pending', 'running', 'succeeded', 'failed', 'missing', 'skipped', 'cancelled',
  'created', 'sent', 'received', 'finished', 'incomplete', 'done', 'retried', 'stopped',
].join('|');
const STATE_MESSAGE = 'A task status, endpoint state or event is named by its constant of api/lifecycle/states.ts (and quoted into SQL with sqlWord/sqlIn).';

export default tseslint.config(
  { ignores: ['dist/', 'packages/*/dist/', 'node_modules/', 'var/', 'ecosystem.config.js'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'no-restricted-properties': ['error', {
        object: 'process', property: 'env',
        message: 'Only config/loader.ts and the process entry points read the environment.',
      }],
      eqeqeq: ['error', 'always'],
    },
  },
  {
    files: ['config/loader.ts', 'scripts/**/*.ts', 'cli/tasker.ts', 'test/**/*.ts', 'bench/**/*.ts'],
    rules: { 'no-restricted-properties': 'off' },
  },
  {
    files: ['api/**/*.ts', 'scripts/**/*.ts'],
    ignores: ['api/lifecycle/states.ts', 'api/storage/migrations/**'],
    rules: {
      'no-restricted-syntax': ['error',
        // A string that is a state word; not a type (`'failed' | …` of a union) nor a wire protocol's `action`.
        { selector: `Literal[value=/^(${STATE_WORDS})$/]:not(TSLiteralType > Literal):not(Property[key.name="action"] > Literal)`, message: STATE_MESSAGE },
        // A state word quoted inside a template or a plain string: SQL.
        { selector: `TemplateElement[value.raw=/'(${STATE_WORDS})'/]`, message: STATE_MESSAGE },
        { selector: `Literal[value=/'(${STATE_WORDS})'/]`, message: STATE_MESSAGE },
      ],
    },
  },
  {
    // The dashboard: plain ES modules that run in the browser, served as they are (no build step).
    files: ['ui/**/*.js'],
    languageOptions: {
      sourceType: 'module',
      globals: Object.fromEntries([
        'window', 'document', 'location', 'localStorage', 'fetch', 'AbortController', 'TextDecoderStream', 'URLSearchParams',
        'FormData', 'Node', 'requestAnimationFrame', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval',
      ].map((name) => [name, 'readonly'])),
    },
    rules: { eqeqeq: ['error', 'always'] },
  },
  {
    // Tests and the benchmark read JSON answers loosely.
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off', '@typescript-eslint/no-non-null-assertion': 'off' },
  },
  // The two sides and what they share: the endpoint side (manager/) and the protocol never reach the
  // server side or a database driver; the common helpers (lib/) reach nothing of the project.
  {
    files: ['manager/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [
        { group: ['**/api', '**/api/**', '**/handlers', '**/handlers/**', '**/scripts/**'], message: 'The endpoint side imports nothing of the server side.' },
        { group: ['typeorm', 'mysql2', 'mysql2/*', 'better-sqlite3'], message: 'An endpoint manager holds no database connection.' },
      ] }],
    },
  },
  {
    files: ['protocol/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [
        { group: ['**/api', '**/api/**', '**/manager', '**/manager/**', '**/handlers/**', '**/scripts/**'], message: 'The protocol is what both sides import; it imports neither.' },
        { group: ['typeorm', 'mysql2', 'mysql2/*', 'better-sqlite3'], message: 'The protocol knows nothing of storage.' },
      ] }],
    },
  },
  {
    // The CLI is a client of the HTTP API and nothing else: no server code, configuration or storage.
    files: ['cli/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [
        { group: ['**/api', '**/api/**', '**/manager', '**/manager/**', '**/protocol/**', '**/config/**', '**/handlers/**', '**/scripts/**'], message: 'The CLI speaks HTTP to the API; it imports nothing of the server.' },
        { group: ['typeorm', 'mysql2', 'mysql2/*', 'better-sqlite3', 'amqplib'], message: 'The CLI holds no database or broker connection.' },
      ] }],
    },
  },
  {
    // What the endpoint package bundles besides manager/ and protocol/ (scripts/endpoint-bundle.ts refuses a
    // bundle that carries the server side; this says where the import is).
    files: ['scripts/compose.ts', 'scripts/managers.ts', 'scripts/manager.ts', 'scripts/tasker-endpoint.ts', 'scripts/main.ts', 'config/**/*.ts', 'handlers/index.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [
        { group: ['**/api', '**/api/**', '**/database', './database'], message: 'The endpoint package bundles this file: it imports nothing of the server side (scripts/database.ts opens the database).' },
        { group: ['typeorm', 'mysql2', 'mysql2/*', 'better-sqlite3', 'koa', '@koa/*'], message: 'The endpoint package bundles this file: no database driver, no HTTP server.' },
      ] }],
    },
  },
  {
    files: ['lib/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [
        { group: ['**/api/**', '**/manager/**', '**/protocol/**', '**/handlers/**', '**/scripts/**'], message: 'lib/ holds helpers of every part and imports none.' },
      ] }],
    },
  },
);
