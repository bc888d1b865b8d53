import type { V1Deployment, V1Job, V1Pod } from "@kubernetes/client-node";

/** Where a watched object stands: still pending (with what was seen), ready, or failed for good. */
export type Readiness =
  | { readonly state: "pending"; readonly detail: string }
  | { readonly state: "ready" }
  | { readonly state: "failed"; readonly reason: string };

/** Container waiting reasons that will not fix themselves. */
const FATAL_WAITING = new Set([
  "CrashLoopBackOff",
  "ErrImagePull",
  "ImagePullBackOff",
  "InvalidImageName",
  "CreateContainerConfigError",
  "CreateContainerError",
]);

/** A pod is ready when its Ready condition is True; Failed/Succeeded or a fatal wait is failure. */
export function podReadiness(pod: V1Pod): Readiness {
  const phase = pod.status?.phase ?? "Pending";
  if (phase === "Failed" || phase === "Succeeded") {
    return {
      state: "failed",
      reason: `pod ${phase}${pod.status?.reason ? ` (${pod.status.reason})` : ""}${pod.status?.message ? `: ${pod.status.message}` : ""}`,
    };
  }
  for (const cs of [
    ...(pod.status?.initContainerStatuses ?? []),
    ...(pod.status?.containerStatuses ?? []),
  ]) {
    const waiting = cs.state?.waiting;
    if (waiting?.reason && FATAL_WAITING.has(waiting.reason)) {
      return {
        state: "failed",
        reason: `container ${cs.name}: ${waiting.reason}${waiting.message ? ` (${waiting.message})` : ""}`,
      };
    }
  }
  const ready = pod.status?.conditions?.find((c) => c.type === "Ready");
  if (ready?.status === "True") return { state: "ready" };
  return { state: "pending", detail: `phase ${phase}${ready?.reason ? `, ${ready.reason}` : ""}` };
}

/** A Deployment is ready when the current generation has all replicas available. */
export function deploymentReadiness(d: V1Deployment): Readiness {
  const want = d.spec?.replicas ?? 1;
  const s = d.status ?? {};
  const progressing = s.conditions?.find((c) => c.type === "Progressing");
  if (progressing?.status === "False" && progressing.reason === "ProgressDeadlineExceeded") {
    return {
      state: "failed",
      reason: `deployment ${progressing.reason}${progressing.message ? `: ${progressing.message}` : ""}`,
    };
  }
  const current = (s.observedGeneration ?? 0) >= (d.metadata?.generation ?? 1);
  if (current && (s.updatedReplicas ?? 0) >= want && (s.availableReplicas ?? 0) >= want)
    return { state: "ready" };
  return {
    state: "pending",
    detail: `${s.availableReplicas ?? 0}/${want} available, ${s.updatedReplicas ?? 0} updated, generation ${s.observedGeneration ?? 0}/${d.metadata?.generation ?? 1}`,
  };
}

/** A Job is "ready" (finished) when it has a Complete or Failed condition; see {@link jobOutcome}. */
export function jobReadiness(j: V1Job): Readiness {
  const o = jobOutcome(j);
  if (o) return { state: "ready" };
  return {
    state: "pending",
    detail: `${j.status?.active ?? 0} active, ${j.status?.failed ?? 0} failed pods`,
  };
}

/** The finished Job's outcome, or undefined while it runs. */
export function jobOutcome(j: V1Job): { succeeded: boolean; reason: string } | undefined {
  for (const c of j.status?.conditions ?? []) {
    if (c.status !== "True") continue;
    if (c.type === "Complete") return { succeeded: true, reason: "Complete" };
    if (c.type === "Failed")
      return {
        succeeded: false,
        reason: `${c.reason ?? "Failed"}${c.message ? `: ${c.message}` : ""}`,
      };
  }
  return undefined;
}
