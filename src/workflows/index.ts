// The workflow bundle's entry point: every workflow the worker runs is exported here.
export { backupInstance, progressQuery } from './backupInstance';
export { backupFleet, fleetProgressQuery } from './backupFleet';
