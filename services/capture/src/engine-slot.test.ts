import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Engine, LoadedTokenizer } from "@abl/engine";
import { createEngineSlot } from "./engine-slot.ts";

/** Fake loaders that record loads and disposals; the slot's policy is what is under test. */
function fakes() {
  const events: string[] = [];
  let n = 0;
  return {
    events,
    load: async (dir: string) => {
      const id = `${dir}#${++n}`;
      events.push(`load ${id}`);
      if (dir === "broken") throw new Error("no config.json");
      const engine = {
        dir,
        dispose: async () => {
          events.push(`dispose ${id}`);
        },
      } as unknown as Engine;
      return { engine, tokenizer: { dir } as unknown as LoadedTokenizer };
    },
  };
}

describe("engine slot", () => {
  it("keeps the engine for the same digest and swaps it for another", async () => {
    const f = fakes();
    const slot = createEngineSlot(f);
    const a = await slot.get("sha256:a", "dir-a");
    assert.equal(a.loaded, true);
    const again = await slot.get("sha256:a", "dir-a");
    assert.equal(again.loaded, false);
    assert.equal(again.engine, a.engine, "the same engine object serves the second job");
    const b = await slot.get("sha256:b", "dir-b");
    assert.equal(b.loaded, true);
    assert.equal(slot.digest, "sha256:b");
    await slot.close();
    assert.equal(slot.digest, undefined);
    assert.deepEqual(f.events, [
      "load dir-a#1",
      "dispose dir-a#1",
      "load dir-b#2",
      "dispose dir-b#2",
    ]);
  });

  it("serializes concurrent gets: one load for one digest", async () => {
    const f = fakes();
    const slot = createEngineSlot(f);
    const [x, y] = await Promise.all([slot.get("d", "dir"), slot.get("d", "dir")]);
    assert.equal(x.engine, y.engine);
    assert.deepEqual(f.events, ["load dir#1"]);
    await slot.close();
  });

  it("is empty after a failed load and loads again on the next get", async () => {
    const f = fakes();
    const slot = createEngineSlot(f);
    await slot.get("a", "dir-a");
    await assert.rejects(slot.get("b", "broken"), /no config.json/);
    assert.equal(slot.digest, undefined, "the old engine was released before the failed load");
    assert.equal((await slot.get("a", "dir-a")).loaded, true);
    await slot.close();
    assert.deepEqual(f.events, [
      "load dir-a#1",
      "dispose dir-a#1",
      "load broken#2",
      "load dir-a#3",
      "dispose dir-a#3",
    ]);
  });

  it("does not load when the caller is already aborted", async () => {
    const f = fakes();
    const slot = createEngineSlot(f);
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(slot.get("a", "dir-a", ac.signal), { name: "AbortError" });
    assert.deepEqual(f.events, []);
  });
});
