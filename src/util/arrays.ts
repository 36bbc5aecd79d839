/**
 * Append every item of `items` to `target`. `target.push(...items)` passes
 * each item as a call argument and throws RangeError (call stack size) past
 * ~100k items: batches of connections and samples get that large.
 */
export function appendAll<T>(target: T[], items: readonly T[]): T[] {
  for (let i = 0; i < items.length; i++) target.push(items[i]!);
  return target;
}
