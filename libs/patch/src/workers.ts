import { Worker } from "node:worker_threads";
import { PatchError } from "./errors.ts";
import { KERNELS_WASM_BASE64 } from "./kernels-wasm.ts";

/** A shared WebAssembly memory (the TypeScript libs of this project carry no wasm typings). */
export interface SharedMemory {
  readonly buffer: SharedArrayBuffer;
}
declare const WebAssembly: {
  Memory: new (d: { initial: number; maximum: number; shared: true }) => SharedMemory;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (m: object, imports: object) => { exports: Record<string, unknown> };
};

/** Names of the exported kernels in libs/patch/wasm/kernels.wat. */
export type KernelName = "colsum_bf16" | "apply_bf16" | "rows_bf16";

/** Bytes of one WebAssembly page. */
const WASM_PAGE = 65536;

/**
 * `bytes` bytes (rounded up to whole wasm pages) of memory that starts on a page boundary: the
 * engine maps a WebAssembly memory on its own, while a Node Buffer this large sits 16 bytes into
 * a malloc mapping. For direct I/O staging, where addresses must be aligned.
 */
export function pageAlignedBytes(bytes: number): Uint8Array {
  return new Uint8Array(pageAlignedMemory(bytes).buffer);
}

/** Buffers whose first byte sits on a page boundary (the WebAssembly memories made here). */
const pageAligned = new WeakSet<ArrayBufferLike>();

/** A shared WebAssembly memory of `bytes` (rounded up to whole wasm pages), page-aligned. */
function pageAlignedMemory(bytes: number): SharedMemory {
  const pages = Math.ceil(bytes / WASM_PAGE);
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  pageAligned.add(memory.buffer);
  return memory;
}

/**
 * The address of `view`'s first byte modulo `align` (a power of two up to the page size), when
 * it is known: `view` lies in memory made by {@link pageAlignedBytes} or {@link PatchWorkers}.
 */
export function addressResidue(view: Uint8Array, align: number): number | undefined {
  return pageAligned.has(view.buffer) ? view.byteOffset % align : undefined;
}

/**
 * The body of a kernel worker. Runs as an eval'd CommonJS worker (no loader, starts in a few ms):
 * it instantiates the kernels on the shared memory and calls one per message.
 */
function kernelWorkerMain(): void {
  const { parentPort, workerData } = require("node:worker_threads");
  const { memory, wasm } = workerData as { memory: SharedMemory; wasm: Uint8Array };
  // Compile the kernels with the optimizing tier right away: each call runs one long loop, and
  // V8 only swaps in optimized code at the next call, so the baseline tier would run the first
  // chunks (measured: 25-35 % slower per element). Affects only modules compiled after it.
  require("node:v8").setFlagsFromString("--no-liftoff");
  const instance = new WebAssembly.Instance(new WebAssembly.Module(wasm), { env: { memory } });
  const fns = instance.exports as Record<string, (...a: number[]) => void>;
  parentPort.on("message", (m: { id: number; fn: string; args: number[] }) => {
    try {
      fns[m.fn]!(...m.args);
      parentPort.postMessage({ id: m.id });
    } catch (err) {
      parentPort.postMessage({ id: m.id, error: String((err as Error)?.stack ?? err) });
    }
  });
}

/**
 * The body of a hashing worker: sha256 of byte ranges of the shared memory (or of small copied
 * chunks), one running hash per stream id, in the order the messages arrive.
 */
function hashWorkerMain(): void {
  const { parentPort, workerData } = require("node:worker_threads");
  const { createHash } = require("node:crypto");
  const buffer = workerData.buffer as SharedArrayBuffer;
  const hashes = new Map<number, { update(b: Uint8Array): void; digest(e: string): string }>();
  parentPort.on(
    "message",
    (m: {
      id: number;
      stream: number;
      op: "update" | "digest" | "drop";
      offset?: number;
      length?: number;
      bytes?: Uint8Array;
    }) => {
      try {
        let h = hashes.get(m.stream);
        if (!h && m.op !== "drop") {
          h = createHash("sha256");
          hashes.set(m.stream, h!);
        }
        if (m.op === "update") {
          h!.update(m.bytes ?? new Uint8Array(buffer, m.offset, m.length));
          parentPort.postMessage({ id: m.id });
        } else if (m.op === "digest") {
          hashes.delete(m.stream);
          parentPort.postMessage({ id: m.id, hex: h!.digest("hex") });
        } else {
          hashes.delete(m.stream);
          parentPort.postMessage({ id: m.id });
        }
      } catch (err) {
        parentPort.postMessage({ id: m.id, error: String((err as Error)?.stack ?? err) });
      }
    },
  );
}

interface Pending {
  resolve(v: { hex?: string }): void;
  reject(e: Error): void;
}

/** A worker with request ids; every request gets one reply. */
class Channel {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private dead: Error | undefined;

  constructor(body: () => void, workerData: unknown, what: string) {
    // The TypeScript loader may wrap named functions in a `__name` helper; define it as identity.
    const source = `const __name = (f) => f;\n(${body.toString()})();`;
    this.worker = new Worker(source, { eval: true, workerData });
    this.worker.unref();
    this.worker.on("message", (m: { id: number; error?: string; hex?: string }) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.error) p.reject(new PatchError(`${what} failed: ${m.error}`));
      else p.resolve(m);
    });
    const fail = (err: Error) => {
      this.dead ??= new PatchError(`${what} stopped: ${err.message}`, { cause: err });
      for (const p of this.pending.values()) p.reject(this.dead);
      this.pending.clear();
    };
    this.worker.on("error", fail);
    this.worker.on("exit", (code) => fail(new Error(`exit code ${code}`)));
  }

  call(
    message: Record<string, unknown>,
    transfer?: readonly ArrayBuffer[],
  ): Promise<{ hex?: string }> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...message, id }, transfer as ArrayBuffer[] | undefined);
    });
  }

  async close(): Promise<void> {
    this.dead ??= new PatchError("worker closed");
    await this.worker.terminate();
  }
}

/**
 * One shared memory for everything a patch touches (I/O ring, directions, per-slice sums), the
 * kernel workers that run the SIMD edit on it, and hashing workers that compute the sha256 of
 * output files from it, so that arithmetic, hashing and I/O overlap on separate cores.
 */
export class PatchWorkers {
  /** The shared memory; `bytes` views all of it. */
  readonly memory: SharedMemory;
  readonly bytes: Uint8Array;
  private readonly kernels: Channel[];
  private readonly hashers: { channel: Channel; open: number }[];
  private nextStream = 1;

  private constructor(memory: SharedMemory, kernelWorkers: number, hashWorkers: number) {
    this.memory = memory;
    this.bytes = new Uint8Array(memory.buffer);
    const wasm = Buffer.from(KERNELS_WASM_BASE64, "base64");
    this.kernels = Array.from(
      { length: kernelWorkers },
      (_, i) => new Channel(kernelWorkerMain, { memory, wasm }, `kernel worker ${i}`),
    );
    this.hashers = Array.from({ length: hashWorkers }, (_, i) => ({
      channel: new Channel(hashWorkerMain, { buffer: memory.buffer }, `hash worker ${i}`),
      open: 0,
    }));
  }

  /**
   * Allocates `bytes` of shared memory (rounded up to 64 KiB pages, at most 4 GiB) and starts
   * `kernelWorkers` kernel workers and `hashWorkers` hashing workers (one per file hashed at once).
   */
  static create(bytes: number, kernelWorkers: number, hashWorkers = 1): PatchWorkers {
    const pages = Math.ceil(bytes / WASM_PAGE);
    if (pages > 65536)
      throw new PatchError(`patch memory of ${bytes} bytes exceeds the 4 GiB WebAssembly limit`);
    if (!Number.isInteger(kernelWorkers) || kernelWorkers < 1)
      throw new PatchError(`kernel workers must be a positive integer, got ${kernelWorkers}`);
    if (!Number.isInteger(hashWorkers) || hashWorkers < 1)
      throw new PatchError(`hash workers must be a positive integer, got ${hashWorkers}`);
    return new PatchWorkers(pageAlignedMemory(bytes), kernelWorkers, hashWorkers);
  }

  /** Number of kernel workers (work is split this many ways). */
  get parallelism(): number {
    return this.kernels.length;
  }

  /** Runs kernel `fn` on worker `w` with integer/float arguments (byte offsets into memory). */
  async run(w: number, fn: KernelName, args: readonly number[]): Promise<void> {
    await this.kernels[w % this.kernels.length]!.call({ fn, args });
  }

  /** A new sha256 stream, on the hashing worker with the fewest streams open. */
  hashStream(): HashStream {
    const stream = this.nextStream++;
    const base = this.bytes;
    const worker = this.hashers.reduce((a, b) => (b.open < a.open ? b : a));
    worker.open++;
    let open = true;
    const close = () => {
      if (open) worker.open--;
      open = false;
    };
    const ch = worker.channel;
    return {
      update(view: Uint8Array): Promise<void> {
        if (view.buffer === base.buffer)
          return ch
            .call({ op: "update", stream, offset: view.byteOffset, length: view.byteLength })
            .then(() => {});
        // Small chunks from elsewhere (headers, report files) are copied across.
        return ch.call({ op: "update", stream, bytes: view.slice() }).then(() => {});
      },
      async digest(): Promise<string> {
        close();
        const { hex } = await ch.call({ op: "digest", stream });
        return hex!;
      },
      async drop(): Promise<void> {
        close();
        await ch.call({ op: "drop", stream }).catch(() => {});
      },
    };
  }

  /** Stops every worker. */
  async close(): Promise<void> {
    await Promise.all(
      [...this.kernels, ...this.hashers.map((h) => h.channel)].map((c) => c.close()),
    );
  }
}

/** A running sha256 on the hashing worker; updates are hashed in call order. */
export interface HashStream {
  update(view: Uint8Array): Promise<void>;
  digest(): Promise<string>;
  drop(): Promise<void>;
}
