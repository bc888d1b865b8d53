export {
  buildCaptureJob,
  type CaptureJobOptions,
  DEFAULT_CAPTURE_BACKOFF_LIMIT,
  DEFAULT_CAPTURE_DEADLINE_SECONDS,
  DEFAULT_CAPTURE_TTL_SECONDS,
} from "./capture-job.ts";
export {
  deploymentReadiness,
  jobOutcome,
  jobReadiness,
  podReadiness,
  type Readiness,
} from "./conditions.ts";
export { KubeError, KubeSpecError, KubeTimeoutError, KubeWorkloadError } from "./errors.ts";
export { type FakeKubeApi, type RecordedRequest, startFakeKubeApi } from "./fake-api-server.ts";
export {
  createKubeLauncher,
  type JobResult,
  type KubeLauncher,
  type KubeLauncherOptions,
  type LauncherLogger,
  MAX_LOG_LINES,
  MAX_WATCH_FAILURES,
  type RunningSglang,
  type RunningTaskPod,
  WATCH_TIMEOUT_SECONDS,
  type WaitOptions,
  type WorkloadKind,
} from "./launcher.ts";
export {
  assertDnsLabel,
  LABELS,
  MAX_NAME_LENGTH,
  toDnsLabel,
  toLabelValue,
  type WorkloadIds,
  workloadLabels,
} from "./names.ts";
export { GPU_TOLERATION, type ResourceSpec, resourceRequirements } from "./resources.ts";
export {
  buildSglangObjects,
  DEFAULT_SGLANG_IMAGE,
  DEFAULT_STARTUP_BUDGET_SECONDS,
  DEFAULT_SYNC_IMAGE,
  type S3Access,
  SGLANG_PORT,
  type SglangObjects,
  type SglangOptions,
  type WeightSource,
} from "./sglang.ts";
export {
  buildTaskPod,
  DEFAULT_TASK_POD_DEADLINE_SECONDS,
  type TaskPodOptions,
} from "./task-pod.ts";
