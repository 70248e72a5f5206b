/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  globalSetup: '<rootDir>/test/globalSetup.ts',
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.ts$': ['@swc/jest', { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'commonjs' } }],
  },
  // Real servers start in these suites; give them room, and never let one hang CI.
  testTimeout: 120_000,
  // Two cores: one suite at a time per core keeps Temporal, moto and the worker responsive.
  maxWorkers: 2,
};
