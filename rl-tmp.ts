const t0 = performance.now();
const { readLock } = await import("/work/main/src/inputs/lock.ts");
const t1 = performance.now();
readLock("/work/main/examples/seed/keel.lock");
const t2 = performance.now();
readLock("/work/main/examples/seed/keel.lock");
const t3 = performance.now();
console.log(`import ${(t1-t0).toFixed(1)} first ${(t2-t1).toFixed(1)} second ${(t3-t2).toFixed(1)}`);
