/**
 * A heartbeat from a long activity, so that Temporal notices a worker that died mid-activity after
 * the heartbeat timeout instead of the whole start-to-close timeout. Outside an activity (the
 * activity tests call the functions directly) it does nothing.
 */
import { Context } from '@temporalio/activity';

export function beat(details?: unknown): void {
  let ctx: Context;
  try {
    ctx = Context.current();
  } catch {
    return;
  }
  ctx.heartbeat(details);
}
