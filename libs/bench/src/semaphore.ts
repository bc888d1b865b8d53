/** A counting semaphore whose waiters can be aborted; used for in-flight and concurrency limits. */
export class Semaphore {
  #free: number;
  readonly #waiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];

  /** `limit` permits (at least 1). */
  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) {
      throw new RangeError(`semaphore limit must be a positive integer, got ${limit}`);
    }
    this.#free = limit;
  }

  /** Waits for a permit; rejects with the signal's reason if aborted while waiting. */
  async acquire(signal?: AbortSignal): Promise<() => void> {
    signal?.throwIfAborted();
    if (this.#free > 0) {
      this.#free--;
      return this.#releaser();
    }
    await new Promise<void>((resolve, reject) => {
      const waiter = {
        resolve: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
        reject,
      };
      const onAbort = () => {
        const i = this.#waiters.indexOf(waiter);
        if (i >= 0) this.#waiters.splice(i, 1);
        reject(signal!.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.push(waiter);
    });
    return this.#releaser();
  }

  /** Runs `fn` holding one permit. */
  async use<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const release = await this.acquire(signal);
    try {
      return await fn();
    } finally {
      release();
    }
  }

  #releaser(): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.#waiters.shift();
      if (next) next.resolve();
      else this.#free++;
    };
  }
}

/** One semaphore per key (e.g. per LLM endpoint), created on first use with the same limit. */
export class KeyedSemaphore {
  readonly #map = new Map<string, Semaphore>();
  /** `limit` permits per key. */
  constructor(readonly limit: number) {}
  /** The semaphore for `key`. */
  get(key: string): Semaphore {
    let s = this.#map.get(key);
    if (!s) {
      s = new Semaphore(this.limit);
      this.#map.set(key, s);
    }
    return s;
  }
}
