// A small typed event emitter (no dependency, same in browsers and Node).
/** Typed listeners keyed by event name; a listener that throws does not stop the others. */
export class Emitter {
    #listeners = new Map();
    #onListenerError;
    /** `onListenerError` gets what a listener throws (default: reported asynchronously). */
    constructor(onListenerError) {
        this.#onListenerError =
            onListenerError ??
                ((error) => {
                    queueMicrotask(() => {
                        throw error;
                    });
                });
    }
    /** Calls `listener` for each `name` event until the returned function is called. */
    on(name, listener) {
        let set = this.#listeners.get(name);
        if (!set) {
            set = new Set();
            this.#listeners.set(name, set);
        }
        set.add(listener);
        return () => {
            set.delete(listener);
        };
    }
    /** Calls every listener of `name` with `value`. */
    emit(name, value) {
        const set = this.#listeners.get(name);
        if (!set)
            return;
        for (const listener of [...set]) {
            try {
                listener(value);
            }
            catch (error) {
                this.#onListenerError(error);
            }
        }
    }
    /** Removes every listener. */
    clear() {
        this.#listeners.clear();
    }
}
