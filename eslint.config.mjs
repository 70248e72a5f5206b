// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', '.cache/', 'node_modules/', 'coverage/', '.tmp/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['**/*.js', '**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: { module: 'writable', require: 'readonly' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // Workflow code is replayed: no I/O, no Node modules, no AWS SDK, no validation library.
    // Types may be imported from anywhere (they vanish at compile time).
    files: ['src/workflows/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['node:*', 'fs', 'path', 'os', 'crypto', 'child_process', 'http', 'https', 'net'],
              message: 'Workflows must not do I/O.',
            },
            {
              group: ['@aws-sdk/*', '@temporalio/worker', '@temporalio/client', '@temporalio/activity', 'zod', 'yaml'],
              message: 'Not in workflow code.',
              allowTypeImports: true,
            },
            { group: ['../activities/*'], message: 'Import only types from activities.', allowTypeImports: true },
          ],
          paths: [
            { name: '../activities', message: 'Import only types from activities.', allowTypeImports: true },
            {
              name: '../policy',
              message: 'The policy index pulls in zod and fs: import ../policy/duration or types from ../policy/schema.',
              allowTypeImports: true,
            },
            { name: '../policy/load', message: 'Loading files is I/O.', allowTypeImports: true },
          ],
        },
      ],
    },
  },
);
