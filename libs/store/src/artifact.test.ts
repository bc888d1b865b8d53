import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  artifactExists,
  createArtifactWriter,
  listArtifacts,
  MANIFEST_NAME,
  publishArtifact,
  readArtifact,
  readArtifactFile,
} from "./artifact.ts";
import { collectBytes } from "./body.ts";
import { IntegrityError, ObjectNotFoundError, StoreError } from "./errors.ts";
import { createLocalStore } from "./local-store.ts";
import type { ObjectStore } from "./object-store.ts";
import { sha256Hex } from "./step-key.ts";

const enc = (s: string) => new TextEncoder().encode(s);

describe("artifacts on the local store", () => {
  let root: string;
  let store: ObjectStore;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), "abl-artifact-"));
    store = createLocalStore({ root, fsync: false });
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("publishes files then a manifest with every file's digest and the caller's metadata", async () => {
    const m = await publishArtifact(
      store,
      "directions/k1",
      [
        { name: "b.safetensors", body: enc("tensor bytes") },
        { name: "sub/a.json", body: enc("{}") },
      ],
      { step: "directions", layer: 7 },
    );
    assert.deepEqual(
      m.files.map((f) => f.name),
      ["b.safetensors", "sub/a.json"],
    );
    assert.equal(m.files[0]!.sha256, sha256Hex("tensor bytes"));
    assert.deepEqual(await readArtifact(store, "directions/k1"), m);
    assert.equal(await artifactExists(store, "directions/k1"), true);
    assert.equal(
      new TextDecoder().decode(
        await collectBytes(readArtifactFile(store, "directions/k1", "sub/a.json")),
      ),
      "{}",
    );
  });

  it("keeps an artifact whose writer died before the manifest invisible", async () => {
    const w = createArtifactWriter(store, "directions/dead");
    await w.addFile("a.bin", enc("aaaa"));
    await w.addFile("b.bin", enc("bbbb"));
    // The writer "dies" here: no commit.
    assert.equal(await readArtifact(store, "directions/dead"), undefined);
    assert.equal(await artifactExists(store, "directions/dead"), false);
    await assert.rejects(
      collectBytes(readArtifactFile(store, "directions/dead", "a.bin")),
      ObjectNotFoundError,
    );
    const listed: string[] = [];
    for await (const p of listArtifacts(store, "directions/")) listed.push(p);
    assert.ok(listed.includes("directions/k1"));
    assert.ok(!listed.includes("directions/dead"));
    // A later writer of the same step completes it.
    await publishArtifact(store, "directions/dead", [{ name: "a.bin", body: enc("aaaa") }]);
    assert.equal(await artifactExists(store, "directions/dead"), true);
  });

  it("refuses to commit when a file changed after it was written", async () => {
    const w = createArtifactWriter(store, "p/changed");
    await w.addFile("x", enc("one"));
    await store.put("p/changed/x", enc("two"));
    await assert.rejects(w.commit(), IntegrityError);
    assert.equal(await artifactExists(store, "p/changed"), false);
  });

  it("checks reads against the manifest, and reserves the manifest name", async () => {
    await publishArtifact(store, "p/m", [{ name: "f", body: enc("12345") }]);
    // Rewrite the file through the store (so its own checksum matches) behind the manifest's back.
    await store.put("p/m/f", enc("54321"));
    await assert.rejects(collectBytes(readArtifactFile(store, "p/m", "f")), (e: unknown) => {
      assert.ok(e instanceof IntegrityError);
      assert.match(e.message, /manifest records 5 bytes/);
      return true;
    });
    const w = createArtifactWriter(store, "p/r");
    await assert.rejects(w.addFile(MANIFEST_NAME, enc("{}")), StoreError);
    await writeFile(join(root, "p/m", MANIFEST_NAME), "not json");
    await assert.rejects(readArtifact(store, "p/m"), IntegrityError);
  });
});
