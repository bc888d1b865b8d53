/**
 * An unbounded async queue: producers `push`, one consumer iterates. Ends on `close()` or when
 * `signal` aborts; `fail(err)` makes the iteration throw.
 */
export class Channel<T> implements AsyncIterable<T> {
  readonly #items: T[] = [];
  #wake: (() => void) | undefined;
  #closed = false;
  #error: unknown;
  #onClose: (() => void) | undefined;

  constructor(signal?: AbortSignal, onClose?: () => void) {
    this.#onClose = onClose;
    if (signal) {
      if (signal.aborted) this.close();
      else signal.addEventListener("abort", () => this.close(), { once: true });
    }
  }

  push(item: T): void {
    if (this.#closed) return;
    this.#items.push(item);
    this.#wake?.();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#wake?.();
    const cb = this.#onClose;
    this.#onClose = undefined;
    cb?.();
  }

  fail(err: unknown): void {
    this.#error = err;
    this.close();
  }

  get closed(): boolean {
    return this.#closed;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    try {
      for (;;) {
        if (this.#items.length > 0) {
          yield this.#items.shift() as T;
          continue;
        }
        if (this.#closed) {
          if (this.#error !== undefined) throw this.#error;
          return;
        }
        await new Promise<void>((r) => {
          this.#wake = r;
        });
        this.#wake = undefined;
      }
    } finally {
      this.close();
    }
  }
}
