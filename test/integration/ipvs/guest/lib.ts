/**
 * What guest/driver.mjs uses of vipd, bundled into one file by vm-scenario.ts (bundleGuest):
 * node in the VM then loads one file over 9p instead of hundreds of modules.
 */
export { IpvsManager } from '../../../../src/ipvs/manager.js';
export { desiredTable, realserverKey } from '../../../../src/ipvs/desired.js';
export { serviceSchema } from '../../../../src/config/schema.js';
export { configureLogging, logger } from '../../../../src/log/logger.js';
