/**
 * A Map and a Set that remember which keys were set, added or deleted since the last take():
 * the coordinator's health, agent and link inputs, so that a pass re-derives only what they
 * touched (derivation.ts).
 */
export class TrackedMap<K, V> extends Map<K, V> {
  private touched = new Set<K>();

  override set(key: K, value: V): this {
    this.touched.add(key);
    return super.set(key, value);
  }

  override delete(key: K): boolean {
    this.touched.add(key);
    return super.delete(key);
  }

  override clear(): void {
    for (const k of this.keys()) this.touched.add(k);
    super.clear();
  }

  /** The keys touched since the last call. */
  take(): Set<K> {
    const t = this.touched;
    this.touched = new Set();
    return t;
  }
}

export class TrackedSet<K> extends Set<K> {
  private touched = new Set<K>();

  override add(key: K): this {
    this.touched.add(key);
    return super.add(key);
  }

  override delete(key: K): boolean {
    this.touched.add(key);
    return super.delete(key);
  }

  override clear(): void {
    for (const k of this.keys()) this.touched.add(k);
    super.clear();
  }

  /** The keys touched since the last call. */
  take(): Set<K> {
    const t = this.touched;
    this.touched = new Set();
    return t;
  }
}
