/** Public surface of the health subsystem for the coordinator. */
export { HealthMonitor } from './monitor.js';
export type {
  AgentEvent,
  AgentTargetSpec,
  CheckTargetSpec,
  HealthConfig,
  HealthEvents,
  HealthStats,
  ResultEvent,
  TargetSpec,
  TargetStatus,
  TransitionEvent,
  UpdateSummary,
} from './monitor.js';
export type { AgentReply, CheckResult } from './types.js';
