import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import { createLogger, REDACTED, TelemetryConfigError } from "./index.ts";

function capture(): { lines: () => Record<string, unknown>[]; stream: Writable } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  });
  const lines = () =>
    chunks
      .join("")
      .split("\n")
      .filter((l) => l.length > 0)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { lines, stream };
}

test("logger writes JSON with ISO time, level word, service and bound child ids", () => {
  const out = capture();
  const log = createLogger({ service: "capture", level: "debug", destination: out.stream });
  log.child({ jobId: "j-1" }).child({ sweepId: "s-9" }).debug({ layer: 3 }, "captured");
  const [line] = out.lines();
  assert.ok(line, "no log line written");
  assert.equal(line.level, "debug");
  assert.equal(line.service, "capture");
  assert.equal(line.jobId, "j-1");
  assert.equal(line.sweepId, "s-9");
  assert.equal(line.layer, 3);
  assert.equal(line.msg, "captured");
  assert.match(String(line.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
});

test("logger redacts secrets at any depth, in bindings, errors and text", () => {
  const out = capture();
  const log = createLogger({ service: "store", destination: out.stream });
  const err = Object.assign(new Error("upload failed"), { accessToken: "tok-123456" });
  log.child({ s3: { endpoint: "http://minio:9000", secretKey: "minio-secret" } }).info(
    {
      req: { headers: { Authorization: "Bearer abc.def.ghi", accept: "*/*" } },
      config: { s3SecretKey: "k1", nested: [{ password: "p1" }, { dbPassword: 7 }] },
      env: { HF_TOKEN: "hf_abcdefghijklmnopqrstuv", HOME: "/root" },
      err,
    },
    "calling hub with Bearer sk-live-0123456789 and hf_ABCDEFGHIJKLMNOPQRSTUV",
  );
  const text = JSON.stringify(out.lines());
  for (const secret of ["minio-secret", "abc.def.ghi", "k1", "p1", "hf_abc", "tok-123456"]) {
    assert.ok(!text.includes(secret), `secret ${secret} leaked: ${text}`);
  }
  assert.ok(!text.includes("sk-live-0123456789"), `bearer token leaked: ${text}`);
  assert.ok(!text.includes("hf_ABCDEFGHIJKLMNOPQRSTUV"), `hf token leaked: ${text}`);
  const [line] = out.lines() as [
    {
      s3: { endpoint: string; secretKey: string };
      req: { headers: Record<string, string> };
      config: { s3SecretKey: string; nested: Record<string, unknown>[] };
      env: Record<string, string>;
      err: { message: string; accessToken: string };
      msg: string;
    },
  ];
  assert.equal(line.s3.endpoint, "http://minio:9000");
  assert.equal(line.s3.secretKey, REDACTED);
  assert.equal(line.req.headers.Authorization, REDACTED);
  assert.equal(line.req.headers.accept, "*/*");
  assert.equal(line.config.s3SecretKey, REDACTED);
  assert.deepEqual(line.config.nested, [{ password: REDACTED }, { dbPassword: REDACTED }]);
  assert.equal(line.env.HF_TOKEN, REDACTED);
  assert.equal(line.env.HOME, "/root");
  assert.equal(line.err.message, "upload failed");
  assert.equal(line.err.accessToken, REDACTED);
  assert.equal(line.msg, `calling hub with Bearer ${REDACTED} and ${REDACTED}`);
});

test("logger rejects an unknown level and an empty service", () => {
  assert.throws(
    () => createLogger({ service: "x", level: "loud" as "info" }),
    (e: unknown) => e instanceof TelemetryConfigError && /"loud"/.test(e.message),
  );
  assert.throws(() => createLogger({ service: "" }), TelemetryConfigError);
});
