import { SettingsError, workerSettings } from '../../src/temporal/workerSettings';

describe('workerSettings', () => {
  it('defaults: SDK limits, 30 s grace, no metrics or health endpoints', () => {
    expect(workerSettings({})).toEqual({
      maxConcurrentActivityTaskExecutions: undefined,
      maxConcurrentWorkflowTaskExecutions: undefined,
      maxCachedWorkflows: undefined,
      shutdownGraceMs: 30_000,
      metricsPort: undefined,
      healthPort: undefined,
      awsMaxAttempts: 3,
    });
  });

  it('reads every variable', () => {
    expect(
      workerSettings({
        AMI_BACKUP_MAX_CONCURRENT_ACTIVITIES: '50',
        AMI_BACKUP_MAX_CONCURRENT_WORKFLOW_TASKS: '20',
        AMI_BACKUP_MAX_CACHED_WORKFLOWS: '500',
        AMI_BACKUP_SHUTDOWN_GRACE: '2m',
        AMI_BACKUP_METRICS_PORT: '9464',
        AMI_BACKUP_HEALTH_PORT: '8081',
        AMI_BACKUP_AWS_MAX_ATTEMPTS: '1',
      }),
    ).toEqual({
      maxConcurrentActivityTaskExecutions: 50,
      maxConcurrentWorkflowTaskExecutions: 20,
      maxCachedWorkflows: 500,
      shutdownGraceMs: 120_000,
      metricsPort: 9464,
      healthPort: 8081,
      awsMaxAttempts: 1,
    });
  });

  it.each([
    [
      { AMI_BACKUP_MAX_CONCURRENT_ACTIVITIES: 'lots' },
      'AMI_BACKUP_MAX_CONCURRENT_ACTIVITIES="lots" must be a whole number from 1 to 10000',
    ],
    [{ AMI_BACKUP_MAX_CONCURRENT_WORKFLOW_TASKS: '1' }, 'AMI_BACKUP_MAX_CONCURRENT_WORKFLOW_TASKS="1" must be a whole number from 2'],
    [{ AMI_BACKUP_METRICS_PORT: '70000' }, 'AMI_BACKUP_METRICS_PORT="70000"'],
    [{ AMI_BACKUP_HEALTH_PORT: '80.5' }, 'AMI_BACKUP_HEALTH_PORT="80.5"'],
    [{ AMI_BACKUP_AWS_MAX_ATTEMPTS: '0' }, 'AMI_BACKUP_AWS_MAX_ATTEMPTS="0" must be a whole number from 1 to 10'],
    [{ AMI_BACKUP_SHUTDOWN_GRACE: 'soon' }, 'AMI_BACKUP_SHUTDOWN_GRACE="soon" must be a duration'],
    [{ AMI_BACKUP_SHUTDOWN_GRACE: '2h' }, 'at most 1h'],
    [{ AMI_BACKUP_METRICS_PORT: '9000', AMI_BACKUP_HEALTH_PORT: '9000' }, 'give them different ports'],
  ])('refuses %p with a message naming the variable', (env, message) => {
    expect(() => workerSettings(env)).toThrow(SettingsError);
    expect(() => workerSettings(env)).toThrow(message);
  });
});
