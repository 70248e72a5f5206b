/**
 * The activities, built over injected AWS clients (Temporal's activities-dependency-injection
 * sample): the worker passes real clients, tests pass clients pointed at moto. Workflows import
 * only the type of what this returns.
 */
import type { ApplyRetentionInput, DiscardImageInput, FindInstancesInput } from '../shared/types';
import type { AwsClients } from './aws';
import { copyImage, type CopyImageInput } from './copyImage';
import { createImage, type CreateImageInput } from './createImage';
import { discardImage } from './discardImage';
import { findInstances } from './findInstances';
import { getImageState, type GetImageStateInput } from './getImageState';
import { applyRetention, listBackups, type ListBackupsInput } from './retention';
import { setSsmParam, type SetSsmParamInput } from './setSsmParam';
import { tagSnapshots, type TagSnapshotsInput } from './tagSnapshots';

/** The steps of a backup (and of a fleet's discovery). */
const backupActivities = (aws: AwsClients) => ({
  findInstances: (input: FindInstancesInput) => findInstances(aws, input),
  createImage: (input: CreateImageInput) => createImage(aws, input),
  getImageState: (input: GetImageStateInput) => getImageState(aws, input),
  tagSnapshots: (input: TagSnapshotsInput) => tagSnapshots(aws, input),
  copyImage: (input: CopyImageInput) => copyImage(aws, input),
  setSsmParam: (input: SetSsmParamInput) => setSsmParam(aws, input),
  listBackups: (input: ListBackupsInput) => listBackups(aws, input),
  applyRetention: (input: ApplyRetentionInput) => applyRetention(aws, input),
});

/** Cleanup after a backup went wrong: a failed image, or the unfinished images of a cancelled run. */
const cleanupActivities = (aws: AwsClients) => ({
  discardImage: (input: DiscardImageInput) => discardImage(aws, input),
});

export const createActivities = (aws: AwsClients) => ({ ...backupActivities(aws), ...cleanupActivities(aws) });

export type Activities = ReturnType<typeof backupActivities>;
export type CleanupActivities = ReturnType<typeof cleanupActivities>;
export { createAwsClients, type AwsClients } from './aws';
