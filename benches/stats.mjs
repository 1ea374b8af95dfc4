// Percentiles for the benchmarks: the nearest-rank value of an ascending array.
export const pct = (sorted, p) =>
  sorted.length ? sorted[Math.min(sorted.length, Math.max(1, Math.ceil(p * sorted.length))) - 1] : NaN
