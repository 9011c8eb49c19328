// A small typed event emitter (no dependency, same in browsers and Node).

/** A listener of events of type `T`. */
export type Listener<T> = (value: T) => void;

/** Removes the listener it was returned for. */
export type Unsubscribe = () => void;

/** Typed listeners keyed by event name; a listener that throws does not stop the others. */
export class Emitter<M extends object> {
  readonly #listeners = new Map<keyof M, Set<Listener<never>>>();
  readonly #onListenerError: (error: unknown) => void;

  /** `onListenerError` gets what a listener throws (default: reported asynchronously). */
  constructor(onListenerError?: (error: unknown) => void) {
    this.#onListenerError =
      onListenerError ??
      ((error) => {
        queueMicrotask(() => {
          throw error;
        });
      });
  }

  /** Calls `listener` for each `name` event until the returned function is called. */
  on<K extends keyof M>(name: K, listener: Listener<M[K]>): Unsubscribe {
    let set = this.#listeners.get(name);
    if (!set) {
      set = new Set();
      this.#listeners.set(name, set);
    }
    set.add(listener as Listener<never>);
    return () => {
      set.delete(listener as Listener<never>);
    };
  }

  /** Calls every listener of `name` with `value`. */
  emit<K extends keyof M>(name: K, value: M[K]): void {
    const set = this.#listeners.get(name);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        (listener as Listener<M[K]>)(value);
      } catch (error) {
        this.#onListenerError(error);
      }
    }
  }

  /** Removes every listener. */
  clear(): void {
    this.#listeners.clear();
  }
}
