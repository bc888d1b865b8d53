import { PatchError } from "./errors.ts";

/** Alignment of every block (the SIMD kernels load 16 bytes at a time). */
const ALIGN = 64;

/** A block of the ring: `offset` bytes into the shared memory, `size` bytes long. */
export interface RingBlock {
  readonly offset: number;
  readonly size: number;
}

/**
 * A FIFO allocator over one region of the shared memory. Blocks are handed out in order and
 * the space comes back once a block and every block before it are released, which is how the
 * patch pipeline retires chunks (reads, edits, writes and hashes all run in order). `alloc`
 * waits while the ring is full, so the ring size bounds the memory in flight.
 */
export class Ring {
  private head = 0; // next free byte (monotonic, modulo size)
  private tail = 0; // oldest byte still in use (monotonic)
  private readonly live: { start: number; end: number; released: boolean }[] = [];
  private waiters: (() => void)[] = [];

  constructor(
    readonly base: number,
    readonly size: number,
  ) {
    if (base % ALIGN !== 0 || size % ALIGN !== 0)
      throw new PatchError(`ring base ${base} and size ${size} must be multiples of ${ALIGN}`);
  }

  /** A block of at least `bytes` bytes (rounded up to 64), contiguous in memory. */
  async alloc(bytes: number, signal?: AbortSignal): Promise<RingBlock> {
    const need = Math.ceil(bytes / ALIGN) * ALIGN;
    if (need > this.size)
      throw new PatchError(`a ${bytes}-byte block does not fit the ${this.size}-byte ring`);
    for (;;) {
      signal?.throwIfAborted();
      const pos = this.head % this.size;
      // A block never wraps: skip the end of the ring when it is too short.
      const skip = pos + need > this.size ? this.size - pos : 0;
      if (this.head + skip + need - this.tail <= this.size) {
        if (skip > 0) this.live.push({ start: this.head, end: this.head + skip, released: true });
        const start = this.head + skip;
        this.head = start + need;
        this.live.push({ start, end: this.head, released: false });
        return { offset: this.base + (start % this.size), size: need };
      }
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
      });
    }
  }

  /** Gives a block back; its space is reused once every older block is back too. */
  release(block: RingBlock): void {
    const rel = block.offset - this.base;
    const entry = this.live.find((e) => !e.released && e.start % this.size === rel);
    if (!entry) throw new PatchError(`ring block at ${block.offset} is not allocated`);
    entry.released = true;
    while (this.live.length > 0 && this.live[0]!.released) this.tail = this.live.shift()!.end;
    if (this.live.length === 0) this.tail = this.head;
    const w = this.waiters;
    this.waiters = [];
    for (const resolve of w) resolve();
  }
}
