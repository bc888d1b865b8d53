export {
  type Agent,
  type AgentContext,
  type AgentStats,
  createNopAgent,
  createOracleAgent,
  newAgentStats,
  type TurnRecord,
} from "./agent.ts";
export { collectFiles, MAX_RECORD_FILE_BYTES } from "./collect.ts";
export {
  type DatasetRef,
  GIT_FETCH_TIMEOUT_MS,
  loadDataset,
  materializeDataset,
  parseDatasetRef,
} from "./dataset.ts";
export { type DockerStep, parseDockerfile } from "./dockerfile.ts";
export {
  containerName,
  createDockerEnvironment,
  type DockerEnvironmentOptions,
  TMUX_SETUP,
} from "./env-docker.ts";
export {
  buildTaskPod,
  createKubernetesEnvironment,
  type KubernetesEnvironmentOptions,
  podName,
  TASK_CONTAINER,
} from "./env-kubernetes.ts";
export {
  createLocalEnvironment,
  type LocalEnvironmentOptions,
  MAX_EXEC_OUTPUT_BYTES,
} from "./env-local.ts";
export type {
  Environment,
  EnvironmentFactory,
  ExecOptions,
  ExecResult,
} from "./environment.ts";
export { ContextLengthError, EnvironmentError, LlmError, TaskLoadError } from "./errors.ts";
export {
  type FakeModel,
  type FakeModelOptions,
  type FakeModelRequest,
  type FakeModelStep,
  startFakeModel,
} from "./fake-model.ts";
export {
  type ChatCompletion,
  type ChatMessage,
  createLlmClient,
  isContextLengthMessage,
  type LlmClient,
  type LlmClientOptions,
  MAX_RESPONSE_BYTES,
  type Sampling,
} from "./llm-client.ts";
export { LOCAL_TASKS_DIR } from "./local-tasks.ts";
export {
  type AgentAction,
  type AgentCommand,
  DEFAULT_COMMAND_DURATION_SEC,
  type ParseOptions,
  type ParseResult,
  parseJsonResponse,
} from "./parse-json.ts";
export { parseXmlResponse } from "./parse-xml.ts";
export {
  type AgentInfo,
  INFRA_OUTCOMES,
  isScoredOutcome,
  type ModelInfo,
  TRIAL_OUTCOMES,
  type TrialOutcome,
  type TrialResult,
  type TrialTimings,
} from "./records.ts";
export { KeyedSemaphore, Semaphore } from "./semaphore.ts";
export {
  planTrials,
  runSuite,
  type SuiteEvent,
  type SuiteOptions,
  type SuiteSummary,
  type SuiteVariant,
  summarize,
  trialIdFor,
  type VariantSummary,
} from "./suite.ts";
export {
  DEFAULT_BUILD_TIMEOUT_SEC,
  DEFAULT_VERIFIER_TIMEOUT_SEC,
  type LoadTaskOptions,
  loadTask,
  loadTaskDir,
  MAX_TASK_BYTES,
  MAX_TASK_FILES,
  parseSizeMb,
  parseTaskConfig,
  type Task,
  type TaskConfig,
  type TaskEnvironment,
  taskDigest,
} from "./task.ts";
export { incrementalOutput, limitOutput, MAX_OUTPUT_BYTES } from "./terminal-output.ts";
export {
  createTerminusAgent,
  MAX_COMMAND_DURATION_SEC,
  TERMINUS_VERSION,
  type TerminusOptions,
} from "./terminus.ts";
export type { TerminusFormat } from "./terminus-prompts.ts";
export { chunkKeystrokes, MAX_SEND_KEYS_BYTES, SESSION_NAME, TmuxSession } from "./tmux-session.ts";
export {
  DEFAULT_MAX_ATTEMPTS,
  type RunTrialOptions,
  readTrialResult,
  resultKey,
  runTrial,
  type TrialEvent,
  type TrialSpec,
} from "./trial.ts";
export {
  rewardFromJson,
  runVerifier,
  type VerifierResult,
} from "./verifier.ts";
