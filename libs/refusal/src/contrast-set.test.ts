import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { loadContrastSet, parseContrastSpec, presetSpec } from "./contrast-spec.ts";
import { ContrastSetError } from "./errors.ts";
import { presetContrastSet } from "./presets/index.ts";
import { parseCsv, readPromptSource } from "./prompt-sources.ts";
import { splitContrastSet } from "./splits.ts";

const fixtures = fileURLToPath(new URL("../fixtures/", import.meta.url));

describe("presets", () => {
  it("agent-shell pairs ≥ 50 tasks, bare vs under the agent system prompt", () => {
    const s = presetContrastSet("agent-shell");
    assert.ok(s.refuse.length >= 50, `${s.refuse.length} tasks`);
    assert.equal(s.refuse.length, s.comply.length);
    assert.equal(new Set(s.refuse.map((p) => p.user)).size, s.refuse.length, "tasks are distinct");
    for (const [i, r] of s.refuse.entries()) {
      const c = s.comply[i];
      assert.ok(c);
      assert.equal(r.system, undefined);
      assert.match(c.system ?? "", /real Linux terminal/);
      assert.equal(r.user, c.user);
      assert.equal(r.group, c.group);
    }
  });

  it("harmful-harmless has ≥ 100 + 100 distinct prompts", () => {
    const s = presetContrastSet("harmful-harmless");
    assert.ok(
      s.refuse.length >= 100 && s.comply.length >= 100,
      `${s.refuse.length} + ${s.comply.length}`,
    );
    assert.equal(new Set(s.refuse.map((p) => p.user)).size, s.refuse.length);
    assert.equal(new Set(s.comply.map((p) => p.user)).size, s.comply.length);
  });
});

describe("splits", () => {
  it("are deterministic, disjoint, keep pairs aligned, and digest their content", () => {
    const set = presetContrastSet("agent-shell");
    const a = splitContrastSet(set, 3);
    const b = splitContrastSet(set, 3);
    assert.deepEqual(a, b);
    const seen = new Set<number>();
    for (const s of ["fit", "select", "eval"] as const) {
      const ix = a.indices[s];
      assert.deepEqual(ix.refuse, ix.comply, `${s}: paired prompts line up`);
      for (const i of ix.refuse) {
        assert.ok(!seen.has(i));
        seen.add(i);
      }
    }
    assert.equal(seen.size, set.refuse.length);
    assert.equal(a.indices.fit.refuse.length, Math.round(set.refuse.length * 0.6));
    const c = splitContrastSet(set, 4);
    assert.notDeepEqual(c.indices.fit, a.indices.fit);
    assert.equal(c.digests.set, a.digests.set);
    assert.notEqual(c.digests.fit, a.digests.fit);
    assert.match(a.digests.eval, /^[0-9a-f]{64}$/);
  });

  it("unpaired buckets each get their own proportions", () => {
    const s = splitContrastSet(presetContrastSet("harmful-harmless"), 0);
    assert.equal(s.indices.select.refuse.length, Math.round(102 * 0.8) - Math.round(102 * 0.6));
  });

  it("an empty split is an error with the numbers", () => {
    const tiny = {
      name: "t",
      refuse: [{ id: "a", group: "a", user: "x" }],
      comply: [{ id: "b", group: "b", user: "y" }],
    };
    assert.throws(
      () => splitContrastSet(tiny, 0),
      /split of the refuse bucket is empty: 1 prompts in 1 groups, fractions 0.6\/0.2\/0.2/,
    );
  });
});

describe("spec parsing", () => {
  it("names the bad key", () => {
    assert.throws(
      () => parseContrastSpec("preset: agent-shell\nrefusee: []"),
      /unknown key "refusee"/,
    );
    assert.throws(
      () => parseContrastSpec("preset: nope"),
      /preset "nope" is not one of agent-shell, harmful-harmless/,
    );
    assert.throws(() => parseContrastSpec("refuse: [a.txt]"), /needs a preset or sources in both/);
    assert.throws(
      () => parseContrastSpec("preset: agent-shell\nsplits: {fit: 0.5, select: 0.2, eval: 0.2}"),
      /splits must sum to 1, got 0.9/,
    );
    assert.throws(
      () => parseContrastSpec("refuse: [{path: a, url: http://x}]\ncomply: [b.txt]"),
      /refuse\[0\] needs exactly one of path, url, hf/,
    );
    assert.throws(
      () => parseContrastSpec("refuse: [{hf: a/b}]\ncomply: [b.txt]"),
      /refuse\[0\].hf needs file/,
    );
    assert.throws(
      () => parseContrastSpec("refuse: [{path: a.txt, limit: 0}]\ncomply: [b.txt]"),
      /refuse\[0\].limit must be a positive integer, got 0/,
    );
  });

  it("accepts JSON too", () => {
    const s = parseContrastSpec('{"preset": "agent-shell", "seed": 5}');
    assert.equal(s.seed, 5);
    assert.equal(s.name, "agent-shell");
  });
});

describe("prompt sources", () => {
  let dir = "";
  let server: ReturnType<typeof createServer>;
  let endpoint = "";
  const requests: string[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "abl-refusal-src-"));
    await writeFile(join(dir, "a.jsonl"), '{"goal": "first"}\n\n{"goal": "  second  "}\n');
    await writeFile(join(dir, "b.csv"), 'id,prompt\n1,"hello, world"\n2,"say ""hi""\nplease"\n');
    await writeFile(join(dir, "c.txt"), "one\n\ntwo\r\nthree\n");
    await writeFile(join(dir, "bad.jsonl"), '{"goal": "ok"}\nnot json\n');
    server = createServer((req, res) => {
      requests.push(req.url ?? "");
      if (req.url === "/datasets/acme/prompts/resolve/v1/data/train.jsonl") {
        res.writeHead(200, { "content-type": "application/json" });
        res.end('{"instruction": "from the hub"}\n{"instruction": "second hub prompt"}\n');
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    await rm(dir, { recursive: true, force: true });
  });

  it("reads JSONL, CSV (quotes, newlines) and TXT", async () => {
    assert.deepEqual(
      await readPromptSource({ type: "path", path: "a.jsonl" }, {}, { baseDir: dir }),
      ["first", "second"],
    );
    assert.deepEqual(await readPromptSource({ type: "path", path: join(dir, "b.csv") }, {}), [
      "hello, world",
      'say "hi"\nplease',
    ]);
    assert.deepEqual(await readPromptSource({ type: "path", path: join(dir, "c.txt") }, {}), [
      "one",
      "two",
      "three",
    ]);
    assert.deepEqual(parseCsv("a,b\r\n1,2\r\n"), [
      ["a", "b"],
      ["1", "2"],
    ]);
  });

  it("reads Parquet (written by pyarrow) by column", async () => {
    const p = await readPromptSource({ type: "path", path: join(fixtures, "prompts.parquet") }, {});
    assert.deepEqual(p, [
      "Write a poem about rain.",
      "Name three prime numbers.",
      "Describe a sunset.",
    ]);
    await assert.rejects(
      readPromptSource(
        { type: "path", path: join(fixtures, "prompts.parquet") },
        { column: "nope" },
      ),
      /has no column "nope" \(columns: goal, category\)/,
    );
  });

  it("resolves Hugging Face dataset files through the configured endpoint", async () => {
    const spec = parseContrastSpec(
      `name: hub\nseed: 1\nrefuse:\n  - { hf: acme/prompts, file: data/train.jsonl, revision: v1 }\ncomply:\n  - { path: c.txt, system: "Be brief." }\n`,
    );
    const set = await loadContrastSet(spec, { hfEndpoint: endpoint, baseDir: dir });
    assert.deepEqual(
      set.refuse.map((p) => p.user),
      ["from the hub", "second hub prompt"],
    );
    assert.equal(set.refuse[0]?.id, "hf:acme/prompts@v1/data/train.jsonl#0");
    assert.deepEqual(
      set.comply.map((p) => p.system),
      ["Be brief.", "Be brief.", "Be brief."],
    );
    assert.ok(requests.includes("/datasets/acme/prompts/resolve/v1/data/train.jsonl"));
    await assert.rejects(
      readPromptSource({ type: "url", url: `${endpoint}/missing.txt` }, {}),
      (e: Error) => e instanceof ContrastSetError && /answered HTTP 404/.test(e.message),
    );
  });

  it("bad sources fail clearly", async () => {
    await assert.rejects(
      readPromptSource({ type: "path", path: join(dir, "bad.jsonl") }, {}),
      /bad.jsonl line 2 is not JSON/,
    );
    await assert.rejects(
      readPromptSource({ type: "path", path: join(dir, "nope.txt") }, {}),
      /nope.txt cannot be read/,
    );
    await assert.rejects(
      readPromptSource({ type: "path", path: join(dir, "a.bin") }, {}),
      /cannot tell the format/,
    );
    await assert.rejects(
      readPromptSource({ type: "path", path: "a.jsonl" }, { column: "text" }, { baseDir: dir }),
      /line 1 has no column "text" \(columns: goal\)/,
    );
  });

  it("an empty bucket is an error", async () => {
    await writeFile(join(dir, "empty.txt"), "\n\n");
    const spec = parseContrastSpec("refuse: [empty.txt]\ncomply: [c.txt]");
    await assert.rejects(
      loadContrastSet(spec, { baseDir: dir }),
      /the refuse bucket of "contrast-set" is empty/,
    );
  });

  it("a preset spec loads without any source", async () => {
    const set = await loadContrastSet(presetSpec("agent-shell"));
    assert.ok(set.refuse.length >= 50);
  });
});
