import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'var/', 'ecosystem.config.js'] },
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
    files: ['config/loader.ts', 'scripts/**/*.ts', 'test/**/*.ts', 'bench/**/*.ts'],
    rules: { 'no-restricted-properties': 'off' },
  },
  {
    // Tests and the benchmark read JSON answers loosely.
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off', '@typescript-eslint/no-non-null-assertion': 'off' },
  },
  {
    files: ['manager/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: ['../api/*', '../handlers/*', '../../api/*', '../../handlers/*'] }],
    },
  },
);
