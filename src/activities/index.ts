/**
 * The activities, built over injected AWS clients (Temporal's activities-dependency-injection
 * sample): the worker passes real clients, tests pass clients pointed at moto. Workflows import
 * only the type of what this returns.
 */
import type { AwsClients } from './aws';
import { copyImage, type CopyImageInput } from './copyImage';
import { createImage, type CreateImageInput } from './createImage';
import { getImageState, type GetImageStateInput } from './getImageState';
import { setSsmParam, type SetSsmParamInput } from './setSsmParam';
import { tagSnapshots, type TagSnapshotsInput } from './tagSnapshots';

export const createActivities = (aws: AwsClients) => ({
  createImage: (input: CreateImageInput) => createImage(aws, input),
  getImageState: (input: GetImageStateInput) => getImageState(aws, input),
  tagSnapshots: (input: TagSnapshotsInput) => tagSnapshots(aws, input),
  copyImage: (input: CopyImageInput) => copyImage(aws, input),
  setSsmParam: (input: SetSsmParamInput) => setSsmParam(aws, input),
});

export type Activities = ReturnType<typeof createActivities>;
export { createAwsClients, type AwsClients } from './aws';
