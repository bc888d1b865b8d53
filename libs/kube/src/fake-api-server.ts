/**
 * A fake Kubernetes API server on node:http for tests: stores Pods, Services, Deployments and
 * Jobs in memory, assigns increasing resourceVersions, answers list (with field and label
 * selectors), create, read, delete and pod logs, and serves watches as JSON lines replayed from
 * an event history after the requested resourceVersion. Tests script status changes with
 * `update`, expire history (watches from older versions get a 410 ERROR event) and close watch
 * streams from the server side. Every request is recorded.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";

type Obj = {
  kind?: string;
  apiVersion?: string;
  metadata?: Record<string, unknown> & { name?: string; labels?: Record<string, string> };
  status?: unknown;
};

/** One request the fake saw. */
export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  readonly body?: unknown;
}

/** Kinds the fake knows, by URL plural. */
const KINDS: Record<string, { kind: string; apiVersion: string }> = {
  pods: { kind: "Pod", apiVersion: "v1" },
  services: { kind: "Service", apiVersion: "v1" },
  deployments: { kind: "Deployment", apiVersion: "apps/v1" },
  jobs: { kind: "Job", apiVersion: "batch/v1" },
};

/** The fake API server; see the module comment. */
export interface FakeKubeApi {
  readonly url: string;
  readonly requests: RecordedRequest[];
  /** A KubeConfig pointing at the fake (token auth, plain http). */
  kubeConfig(): KubeConfig;
  get(kind: string, namespace: string, name: string): Obj | undefined;
  /** Mutates a stored object, bumps its resourceVersion and emits MODIFIED. */
  update(kind: string, namespace: string, name: string, mutate: (obj: Obj) => void): void;
  /** Called after each create, to script what the "cluster" does next. */
  onCreate: ((kind: string, obj: Obj) => void) | undefined;
  setLog(namespace: string, pod: string, text: string): void;
  /** Compacts history: watches from a resourceVersion older than the current one get a 410 ERROR event. */
  expireHistory(): void;
  /** Ends every open watch stream (as an API server does when its watch timeout passes). */
  closeWatches(): void;
  /** Number of watch streams open now. */
  openWatches(): number;
  /** How many watches were answered with 410 Gone. */
  goneResponses(): number;
  close(): Promise<void>;
}

interface Event {
  rv: number;
  type: string;
  plural: string;
  namespace: string;
  obj: Obj;
}

interface Watcher {
  plural: string;
  namespace: string;
  field?: string;
  res: ServerResponse;
}

const clone = <T>(x: T): T => JSON.parse(JSON.stringify(x)) as T;

function matches(obj: Obj, field: string | undefined, labels: string | undefined): boolean {
  if (field) {
    const m = /^metadata\.name=(.+)$/.exec(field);
    if (m && obj.metadata?.name !== m[1]) return false;
  }
  if (labels) {
    for (const part of labels.split(",")) {
      const [k, v] = part.split("=");
      if (obj.metadata?.labels?.[k!] !== v) return false;
    }
  }
  return true;
}

/** Starts the fake on 127.0.0.1 with a random port. */
export async function startFakeKubeApi(): Promise<FakeKubeApi> {
  const store = new Map<string, Obj>();
  const logs = new Map<string, string>();
  const history: Event[] = [];
  const watchers = new Set<Watcher>();
  const requests: RecordedRequest[] = [];
  let rv = 100;
  let compactedBelow = 0;
  let gone = 0;
  const key = (plural: string, ns: string, name: string) => `${plural}/${ns}/${name}`;

  function emit(type: string, plural: string, namespace: string, obj: Obj): void {
    const ev: Event = {
      rv: Number(obj.metadata?.resourceVersion),
      type,
      plural,
      namespace,
      obj: clone(obj),
    };
    history.push(ev);
    for (const w of watchers) {
      if (w.plural === plural && w.namespace === namespace && matches(ev.obj, w.field, undefined)) {
        w.res.write(`${JSON.stringify({ type, object: ev.obj })}\n`);
      }
    }
  }

  function send(res: ServerResponse, code: number, body: unknown): void {
    res.writeHead(code, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  }
  const status = (code: number, reason: string, message: string) => ({
    kind: "Status",
    apiVersion: "v1",
    status: "Failure",
    code,
    reason,
    message,
  });

  const api: FakeKubeApi = {
    url: "",
    requests,
    onCreate: undefined,
    kubeConfig() {
      const kc = new KubeConfig();
      kc.loadFromOptions({
        clusters: [{ name: "fake", server: api.url, skipTLSVerify: true }],
        users: [{ name: "tester", token: "fake-token" }],
        contexts: [{ name: "fake", cluster: "fake", user: "tester" }],
        currentContext: "fake",
      });
      return kc;
    },
    get(kind, namespace, name) {
      const plural = Object.entries(KINDS).find(([, v]) => v.kind === kind)?.[0];
      const o = plural ? store.get(key(plural, namespace, name)) : undefined;
      return o ? clone(o) : undefined;
    },
    update(kind, namespace, name, mutate) {
      const plural = Object.entries(KINDS).find(([, v]) => v.kind === kind)![0];
      const o = store.get(key(plural, namespace, name));
      if (!o) throw new Error(`fake: no ${kind} ${namespace}/${name}`);
      mutate(o);
      o.metadata!.resourceVersion = String(++rv);
      emit("MODIFIED", plural, namespace, o);
    },
    setLog(namespace, pod, text) {
      logs.set(`${namespace}/${pod}`, text);
    },
    expireHistory() {
      compactedBelow = rv;
    },
    closeWatches() {
      for (const w of watchers) w.res.end();
      watchers.clear();
    },
    openWatches: () => watchers.size,
    goneResponses: () => gone,
    close: () =>
      new Promise<void>((resolve) => {
        api.closeWatches();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://fake");
    const query = Object.fromEntries(url.searchParams);
    let body: unknown;
    if (req.method === "POST" || req.method === "PUT" || req.method === "DELETE") {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const text = Buffer.concat(chunks).toString("utf8");
      body = text ? JSON.parse(text) : undefined;
    }
    requests.push({
      method: req.method ?? "GET",
      path: url.pathname,
      query,
      ...(body === undefined ? {} : { body }),
    });
    const m =
      /^\/api\/v1\/namespaces\/([^/]+)\/(pods|services)(?:\/([^/]+)(\/log)?)?$/.exec(
        url.pathname,
      ) ??
      /^\/apis\/(?:apps|batch)\/v1\/namespaces\/([^/]+)\/(deployments|jobs)(?:\/([^/]+))?()$/.exec(
        url.pathname,
      );
    if (!m) return send(res, 404, status(404, "NotFound", `no route ${url.pathname}`));
    const [, ns, plural, name, isLog] = m as unknown as [
      string,
      string,
      string,
      string | undefined,
      string | undefined,
    ];
    const meta = KINDS[plural]!;
    if (isLog) {
      const text = logs.get(`${ns}/${name}`);
      if (text === undefined)
        return send(res, 404, status(404, "NotFound", `no log for pod ${name}`));
      res.writeHead(200, { "content-type": "text/plain" });
      res.end(text);
      return;
    }
    if (req.method === "GET" && name === undefined && query.watch === "true") {
      const from = Number(query.resourceVersion ?? "0");
      res.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked" });
      if (from < compactedBelow) {
        gone++;
        res.end(
          `${JSON.stringify({ type: "ERROR", object: status(410, "Expired", `too old resource version: ${from}`) })}\n`,
        );
        return;
      }
      for (const ev of history) {
        if (
          ev.rv > from &&
          ev.plural === plural &&
          ev.namespace === ns &&
          matches(ev.obj, query.fieldSelector, undefined)
        ) {
          res.write(`${JSON.stringify({ type: ev.type, object: ev.obj })}\n`);
        }
      }
      const w: Watcher = {
        plural,
        namespace: ns,
        res,
        ...(query.fieldSelector ? { field: query.fieldSelector } : {}),
      };
      watchers.add(w);
      res.on("close", () => watchers.delete(w));
      return;
    }
    if (req.method === "GET" && name === undefined) {
      const items = [...store.entries()]
        .filter(([k]) => k.startsWith(`${plural}/${ns}/`))
        .map(([, o]) => o)
        .filter((o) => matches(o, query.fieldSelector, query.labelSelector));
      return send(res, 200, {
        kind: `${meta.kind}List`,
        apiVersion: meta.apiVersion,
        metadata: { resourceVersion: String(rv) },
        items,
      });
    }
    if (req.method === "GET") {
      const o = store.get(key(plural, ns, name!));
      return o
        ? send(res, 200, o)
        : send(res, 404, status(404, "NotFound", `${plural} "${name}" not found`));
    }
    if (req.method === "POST" && name === undefined) {
      const o = body as Obj;
      const n = o.metadata?.name ?? "";
      if (store.has(key(plural, ns, n))) {
        return send(res, 409, status(409, "AlreadyExists", `${plural} "${n}" already exists`));
      }
      o.kind = meta.kind;
      o.apiVersion = meta.apiVersion;
      o.metadata = {
        ...o.metadata,
        namespace: ns,
        uid: `uid-${rv + 1}`,
        generation: 1,
        creationTimestamp: new Date().toISOString(),
        resourceVersion: String(++rv),
      };
      o.status ??= {};
      store.set(key(plural, ns, n), o);
      emit("ADDED", plural, ns, o);
      send(res, 201, o);
      api.onCreate?.(meta.kind, clone(o));
      return;
    }
    if (req.method === "DELETE" && name !== undefined) {
      const o = store.get(key(plural, ns, name));
      if (!o) return send(res, 404, status(404, "NotFound", `${plural} "${name}" not found`));
      store.delete(key(plural, ns, name));
      o.metadata!.resourceVersion = String(++rv);
      emit("DELETED", plural, ns, o);
      return send(res, 200, { kind: "Status", apiVersion: "v1", status: "Success", code: 200 });
    }
    send(res, 405, status(405, "MethodNotAllowed", `${req.method} ${url.pathname}`));
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, status(500, "InternalError", String(err)));
      else res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  (api as { url: string }).url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return api;
}
