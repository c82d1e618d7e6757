// Many machines at once (`keel deploy --on`): the systems `--on` names, and
// deploys run side by side with at most `jobs` at a time.
import { UsageError } from "../errors.js";

/**
 * The systems `--on a,@tag,b` names, in the order given, each once. `tags`
 * maps each system of the project to its deploy.tags; an unknown name or a
 * tag no system has is an error that lists what there is.
 */
export function selectSystems(on: string, tags: ReadonlyMap<string, readonly string[]>): string[] {
  const chosen: string[] = [];
  const words = on.split(",").map((w) => w.trim());
  for (const word of words) {
    if (word === "") throw new UsageError(`keel deploy: --on ${on} has an empty name.\nFix: separate systems and @tags by single commas, e.g. --on aethelred,@office.`);
    const named = word.startsWith("@") ? [...tags].filter(([, t]) => t.includes(word.slice(1))).map(([system]) => system) : tags.has(word) ? [word] : [];
    if (named.length === 0) {
      const known = [...new Set([...tags.values()].flat())].sort();
      throw new UsageError(
        word.startsWith("@")
          ? `keel deploy: --on ${word}: no system has the tag \`${word.slice(1)}' in deploy.tags.\nFix: name one of the tags there is (${known.map((t) => `@${t}`).join(", ") || "none yet"}), or add it to deploy.tags of the systems it means.`
          : `keel deploy: --on ${word}: the project has no system \`${word}'.\nFix: name one of ${[...tags.keys()].join(", ")} (see \`keel systems\`).`,
      );
    }
    for (const system of named) if (!chosen.includes(system)) chosen.push(system);
  }
  return chosen;
}

/**
 * Runs `task` over `items`, at most `jobs` at a time, in order. Once
 * `stopWhen` is true of a result, no further item starts: those are left
 * undefined in the results.
 */
export async function runLimited<T, R>(items: readonly T[], jobs: number, task: (item: T) => Promise<R>, stopWhen: (result: R) => boolean = () => false): Promise<(R | undefined)[]> {
  const results: (R | undefined)[] = items.map(() => undefined);
  let next = 0;
  let stopped = false;
  const worker = async (): Promise<void> => {
    while (!stopped && next < items.length) {
      const i = next++;
      const result = await task(items[i] as T);
      results[i] = result;
      if (stopWhen(result)) stopped = true;
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, items.length) }, worker));
  return results;
}
