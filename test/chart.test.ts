// Checks the Helm chart and the deploy/ files without a cluster: every template parses as YAML
// after a minimal substitution of template actions (helm is not installable from apt), template
// blocks balance, every .Values path exists in values.yaml, the dashboard and rules are valid and
// identical to their deploy/ sources, and the PodMonitor selects the labels libs/kube puts on
// sglang pods. When a `helm` binary is on PATH, `helm lint` and `helm template` run as well.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { buildSglangObjects } from "@abl/kube";
import { parse, parseAllDocuments } from "yaml";

const root = new URL("..", import.meta.url).pathname;
/** The dashboard's datasource template variable (a Grafana placeholder, not a JS template). */
const GRAFANA_DATASOURCE_VAR = "$" + "{datasource}";
const chart = join(root, "charts/abliterate");
const read = (p: string) => readFileSync(join(root, p), "utf8");
const templates = readdirSync(join(chart, "templates")).filter((f) => f.endsWith(".yaml"));
const values = parse(readFileSync(join(chart, "values.yaml"), "utf8")) as Record<string, unknown>;

/** Drops lines that hold only template actions and replaces inline actions with a scalar. */
function substitute(text: string): string {
  return text
    .replace(/\{\{-?\s*\/\*[\s\S]*?\*\/\s*-?\}\}/g, "")
    .split("\n")
    .filter((line) => line.replace(/\{\{[\s\S]*?\}\}/g, "").trim() !== "" || line.trim() === "")
    .map((line) => line.replace(/\{\{[\s\S]*?\}\}/g, "x"))
    .join("\n");
}

test("every chart template parses as Kubernetes YAML after substitution", () => {
  const kinds = new Set<string>();
  for (const file of templates) {
    const docs = parseAllDocuments(
      substitute(readFileSync(join(chart, "templates", file), "utf8")),
    );
    for (const doc of docs) {
      assert.deepEqual(doc.errors, [], `${file}: ${doc.errors.map((e) => e.message).join("; ")}`);
      const obj = doc.toJS() as {
        apiVersion?: string;
        kind?: string;
        metadata?: { name?: string };
      } | null;
      if (obj === null) continue;
      assert.ok(
        obj.apiVersion && obj.kind && obj.metadata?.name,
        `${file}: a document lacks apiVersion/kind/metadata.name`,
      );
      kinds.add(obj.kind);
    }
  }
  for (const k of [
    "Deployment",
    "Service",
    "StatefulSet",
    "ServiceMonitor",
    "PodMonitor",
    "PrometheusRule",
    "ConfigMap",
    "Role",
    "RoleBinding",
    "ServiceAccount",
    "Secret",
    "Job",
  ]) {
    assert.ok(kinds.has(k), `chart renders no ${k}`);
  }
});

test("template blocks balance and every .Values path exists in values.yaml", () => {
  const files = [...templates, "_helpers.tpl", "NOTES.txt"];
  const serviceFields = new Set<string>();
  for (const s of Object.values(values.services as Record<string, Record<string, unknown>>)) {
    for (const k of Object.keys(s)) serviceFields.add(k);
  }
  for (const file of files) {
    const text = readFileSync(join(chart, "templates", file), "utf8");
    const opens = text.match(/\{\{-?\s*(if|range|with|define)\b/g)?.length ?? 0;
    const ends = text.match(/\{\{-?\s*end\s*-?\}\}/g)?.length ?? 0;
    assert.equal(opens, ends, `${file}: ${opens} blocks opened, ${ends} closed`);
    for (const m of text.matchAll(/\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)/g)) {
      let node: unknown = values;
      for (const key of m[1]!.slice(1).split(".")) {
        assert.ok(
          typeof node === "object" && node !== null && key in node,
          `${file}: .Values${m[1]} is not in values.yaml`,
        );
        node = (node as Record<string, unknown>)[key];
      }
    }
    for (const m of text.matchAll(/\$svc\.([A-Za-z_]+)/g)) {
      assert.ok(
        serviceFields.has(m[1]!),
        `${file}: $svc.${m[1]} is not a field of services.* in values.yaml`,
      );
    }
  }
  assert.deepEqual(Object.keys(values.services as object).sort(), [
    "capture",
    "directions",
    "patcher",
    "runner",
    "scheduler",
  ]);
});

test("dashboard and rules are valid, cover the pipeline, and match their deploy/ sources", () => {
  const dash = read("deploy/grafana/abliterate-dashboard.json");
  assert.equal(
    read("charts/abliterate/files/abliterate-dashboard.json"),
    dash,
    "copy deploy/grafana/abliterate-dashboard.json into charts/abliterate/files/",
  );
  const rulesText = read("deploy/prometheus/abliterate-rules.yaml");
  assert.equal(
    read("charts/abliterate/files/abliterate-rules.yaml"),
    rulesText,
    "copy deploy/prometheus/abliterate-rules.yaml into charts/abliterate/files/",
  );
  const d = JSON.parse(dash) as {
    panels: { type: string; datasource?: { uid: string }; targets?: { expr: string }[] }[];
  };
  const exprs = d.panels.flatMap((p) => p.targets?.map((t) => t.expr) ?? []);
  for (const metric of [
    "abl_jobs_pending",
    "abl_job_duration_seconds",
    "abl_trials_total",
    "abl_grpc_server_handl",
    "sglang:num_queue_reqs",
    "sglang:time_to_first_token_seconds",
  ]) {
    assert.ok(
      exprs.some((e) => e.includes(metric)),
      `no dashboard panel queries ${metric}`,
    );
  }
  for (const p of d.panels.filter((p) => p.type !== "row"))
    assert.equal(p.datasource?.uid, GRAFANA_DATASOURCE_VAR);
  const rules = parse(rulesText) as {
    groups: { name: string; rules: { record?: string; alert?: string; expr: string }[] }[];
  };
  const records = new Set<string>();
  for (const g of rules.groups) {
    for (const r of g.rules) {
      assert.ok(
        (r.record || r.alert) && typeof r.expr === "string" && r.expr.trim() !== "",
        `rule in ${g.name} needs record/alert and expr`,
      );
      if (r.record) records.add(r.record);
    }
  }
  for (const e of exprs)
    for (const m of e.matchAll(/\babl:[a-z0-9_:]+/g))
      assert.ok(records.has(m[0]), `dashboard uses ${m[0]}, which no rule records`);
});

test("the sglang PodMonitor selects the labels libs/kube puts on sglang pods", () => {
  const objs = buildSglangObjects({
    name: "v",
    namespace: "abl",
    servedModelName: "v",
    weights: { kind: "path", path: "/m" },
  });
  const podLabels = objs.deployment.spec!.template.metadata!.labels!;
  const text = substitute(readFileSync(join(chart, "templates/monitoring.yaml"), "utf8"));
  const podMonitor = parseAllDocuments(text)
    .map(
      (d) =>
        d.toJS() as {
          kind?: string;
          spec?: {
            selector: { matchLabels: Record<string, string> };
            podMetricsEndpoints: { port: string }[];
          };
        },
    )
    .find((o) => o?.kind === "PodMonitor")!;
  for (const [k, v] of Object.entries(podMonitor.spec!.selector.matchLabels))
    assert.equal(podLabels[k], v, `sglang pods lack ${k}=${v}`);
  const ports = objs.deployment.spec!.template.spec!.containers[0]!.ports!.map((p) => p.name);
  assert.ok(ports.includes(podMonitor.spec!.podMetricsEndpoints[0]!.port));
});

test("helm lint and helm template succeed when helm is installed", () => {
  const which = spawnSync("sh", ["-c", "command -v helm"], { encoding: "utf8" });
  if (which.status !== 0) {
    // No helm binary (it is not packaged for apt): the substitution checks above stand in.
    assert.equal(which.stdout.trim(), "");
    return;
  }
  const lint = spawnSync("helm", ["lint", chart], { encoding: "utf8" });
  assert.equal(lint.status, 0, lint.stdout + lint.stderr);
  const out = spawnSync(
    "helm",
    // helm's client-only default is Kubernetes 1.20, below the chart's kubeVersion.
    ["template", "abl", chart, "--namespace", "abl", "--kube-version", "1.30.0"],
    { encoding: "utf8" },
  );
  assert.equal(out.status, 0, out.stderr);
  const kinds = parseAllDocuments(out.stdout).map((doc) => {
    assert.deepEqual(doc.errors, []);
    return (doc.toJS() as { kind?: string } | null)?.kind;
  });
  assert.equal(kinds.filter((k) => k === "Deployment").length, 6, "five services and MinIO");
  const external = spawnSync(
    "helm",
    ["template", "abl", chart, "--kube-version", "1.30.0", "--set", "minio.enabled=false"],
    { encoding: "utf8" },
  );
  assert.notEqual(external.status, 0);
  assert.match(external.stderr, /s3\.endpoint is required when minio\.enabled is false/);
});
