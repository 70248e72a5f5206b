/**
 * The custom search attributes runs carry, so the Web UI and `ami-backup list` can filter by
 * policy and instance. A server that lacks them refuses any workflow that sets them, so whoever
 * starts a run asks first (`searchAttributesRegistered`) and tells the workflow in its input.
 *
 * Register them once per namespace:
 *   temporal operator search-attribute create --name AmiBackupPolicy --type Keyword
 *   temporal operator search-attribute create --name AmiBackupInstanceId --type Keyword
 * (the dev server: `temporal server start-dev --search-attribute AmiBackupPolicy=Keyword ...`).
 *
 * Workflow-safe: only @temporalio/common (no I/O) at the top; the check takes a client.
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const POLICY_ATTRIBUTE = defineSearchAttributeKey('AmiBackupPolicy', SearchAttributeType.KEYWORD);
export const INSTANCE_ATTRIBUTE = defineSearchAttributeKey('AmiBackupInstanceId', SearchAttributeType.KEYWORD);

/** `--search-attribute` arguments for `temporal server start-dev`. */
export const DEV_SERVER_SEARCH_ATTRIBUTES = [`${POLICY_ATTRIBUTE.name}=Keyword`, `${INSTANCE_ATTRIBUTE.name}=Keyword`];

/** What a client needs: the operator service's ListSearchAttributes. */
export interface OperatorLike {
  operatorService: {
    listSearchAttributes(req: { namespace: string }): Promise<{ customAttributes?: Record<string, unknown> | null }>;
  };
}

/** Whether both attributes exist in the namespace; false when the server will not say (no permission). */
export async function searchAttributesRegistered(client: OperatorLike, namespace: string): Promise<boolean> {
  try {
    const listed = await client.operatorService.listSearchAttributes({ namespace });
    const custom = listed.customAttributes ?? {};
    return POLICY_ATTRIBUTE.name in custom && INSTANCE_ATTRIBUTE.name in custom;
  } catch {
    return false;
  }
}
