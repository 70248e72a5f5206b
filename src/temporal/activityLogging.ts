/**
 * One log line when each activity attempt starts and ends, with the workflow and activity context
 * the SDK's activity logger attaches: the worker's log reads like the backup's story.
 */
import type { Context } from '@temporalio/activity';
import type { ActivityInterceptorsFactory } from '@temporalio/worker';

export const activityLogging: ActivityInterceptorsFactory = (ctx: Context) => ({
  inbound: {
    async execute(input, next) {
      const { activityType, attempt } = ctx.info;
      const started = Date.now();
      ctx.log.info(`${activityType} started`, { attempt });
      try {
        const result = await next(input);
        ctx.log.info(`${activityType} completed`, { attempt, durationMs: Date.now() - started });
        return result;
      } catch (err) {
        const e = err as { message?: string; type?: string; nonRetryable?: boolean };
        ctx.log.warn(`${activityType} failed`, {
          attempt,
          durationMs: Date.now() - started,
          error: e?.message,
          errorType: e?.type,
          willRetry: !e?.nonRetryable,
        });
        throw err;
      }
    },
  },
});
