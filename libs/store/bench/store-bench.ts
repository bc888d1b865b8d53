/**
 * `npm run bench:store`: streams one synthetic object through a local MinIO with the plain
 * `minio` client (what a user would otherwise write: `putObject(stream, size)` and `getObject`)
 * and through `@abl/store`'s S3 store (put with the digest unknown = staged upload + server-side
 * copy; put with the digest known = direct; verified get). Each run is a fresh child process, so
 * its peak RSS growth is its own. Prints seconds, MiB/s, peak RSS growth and ratios against the
 * plain client. Flags: --mib N (default 512).
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { startS3 } from "@abl/e2e/servers";
import { createS3Store } from "@abl/store";
import { Client } from "minio";

const MiB = 1024 * 1024;
const BUCKET = "bench";
const RUNS = [
  ["raw-put", "minio putObject(stream, size)"],
  ["abl-put", "abl put (digest unknown)"],
  ["abl-put-sha", "abl put (digest known)"],
  ["raw-get", "minio getObject"],
  ["abl-get", "abl get (sha256 verified)"],
] as const;

const { values } = parseArgs({
  options: {
    mib: { type: "string", default: "512" },
    run: { type: "string" },
    endpoint: { type: "string" },
    key: { type: "string" },
    secret: { type: "string" },
  },
  strict: true,
});
const mib = Number(values.mib);
if (!Number.isInteger(mib) || mib < 1)
  throw new Error(`--mib must be a positive integer, got ${values.mib}`);
const size = mib * MiB;

function* pattern(): Generator<Buffer> {
  for (let i = 0; i < mib; i++) {
    const b = Buffer.allocUnsafe(MiB).fill(i & 0xff);
    b.writeUInt32LE(i, 0);
    yield b;
  }
}

/** One run inside a child process: prints `{seconds, rssGrowthMiB}` as JSON. */
async function child(
  run: string,
  endpoint: string,
  accessKey: string,
  secretKey: string,
): Promise<void> {
  const url = new URL(endpoint);
  const raw = new Client({
    endPoint: url.hostname,
    port: Number(url.port),
    useSSL: false,
    accessKey,
    secretKey,
  });
  const store = createS3Store({ endpoint, accessKey, secretKey, bucket: BUCKET });
  let digest = "";
  if (run === "abl-put-sha") {
    const h = createHash("sha256");
    for (const b of pattern()) h.update(b);
    digest = h.digest("hex");
  }
  const base = process.memoryUsage().rss;
  let peak = base;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 10);
  const t0 = performance.now();
  let n = 0;
  switch (run) {
    case "raw-put":
      await raw.putObject(BUCKET, "raw", Readable.from(pattern()), size);
      break;
    case "abl-put":
      await store.put("staged", Readable.from(pattern()), { size });
      break;
    case "abl-put-sha":
      await store.put("direct", Readable.from(pattern()), { size, sha256: digest });
      break;
    case "raw-get":
      for await (const c of await raw.getObject(BUCKET, "raw")) n += (c as Buffer).byteLength;
      break;
    case "abl-get":
      for await (const c of store.get("staged")) n += c.byteLength;
      break;
    default:
      throw new Error(`unknown run ${run}`);
  }
  const seconds = (performance.now() - t0) / 1000;
  clearInterval(timer);
  if (run.endsWith("get") && n !== size)
    throw new Error(`${run} read ${n} bytes, expected ${size}`);
  peak = Math.max(peak, process.memoryUsage().rss);
  console.log(JSON.stringify({ seconds, rssGrowthMiB: (peak - base) / MiB }));
}

if (values.run) {
  await child(values.run, values.endpoint!, values.key!, values.secret!);
} else {
  const s3 = await startS3();
  try {
    const raw = new Client({
      endPoint: s3.host,
      port: s3.port,
      useSSL: false,
      accessKey: s3.accessKey,
      secretKey: s3.secretKey,
    });
    await raw.makeBucket(BUCKET, "");
    const self = fileURLToPath(import.meta.url);
    const rows: Array<{ name: string; seconds: number; rssGrowthMiB: number }> = [];
    for (const [run, name] of RUNS) {
      const r = spawnSync(
        process.execPath,
        [
          "--import",
          "tsx",
          self,
          "--mib",
          String(mib),
          "--run",
          run,
          "--endpoint",
          s3.endpoint,
          "--key",
          s3.accessKey,
          "--secret",
          s3.secretKey,
        ],
        { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] },
      );
      if (r.status !== 0) throw new Error(`run ${run} failed with status ${r.status}`);
      rows.push({
        name,
        ...(JSON.parse(r.stdout.trim().split("\n").pop()!) as {
          seconds: number;
          rssGrowthMiB: number;
        }),
      });
    }
    console.log(`object: ${mib} MiB, MinIO on loopback`);
    console.log("| run | seconds | MiB/s | time vs plain minio | peak RSS growth MiB |");
    console.log("|---|---|---|---|---|");
    for (const [i, r] of rows.entries()) {
      const base = rows[i < 3 ? 0 : 3]!.seconds;
      console.log(
        `| ${r.name} | ${r.seconds.toFixed(2)} | ${(mib / r.seconds).toFixed(0)} | ${(r.seconds / base).toFixed(2)}x | ${r.rssGrowthMiB.toFixed(0)} |`,
      );
    }
  } finally {
    await s3.stop();
  }
}
