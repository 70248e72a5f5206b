/** Reading workflow histories in tests. */
import type { temporal as proto } from '@temporalio/proto';
import { temporal } from '@temporalio/proto';

const EventType = temporal.api.enums.v1.EventType;

const CHILD_ENDED = new Set([
  EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED,
  EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED,
  EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED,
  EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED,
  EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT,
  EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED,
]);

/** From a parent's history: the most children in flight at once, and how many started and ended. */
export function childrenInFlight(events: proto.api.history.v1.IHistoryEvent[]): { max: number; started: number; ended: number } {
  let now = 0;
  let max = 0;
  let started = 0;
  let ended = 0;
  for (const e of events) {
    if (e.eventType === EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED) {
      now += 1;
      started += 1;
    }
    if (e.eventType != null && CHILD_ENDED.has(e.eventType)) {
      now -= 1;
      ended += 1;
    }
    max = Math.max(max, now);
  }
  return { max, started, ended };
}
