/**
 * Special functions the tests need: log-gamma (Lanczos, g = 7), the regularized upper incomplete
 * gamma function (series / continued fraction, as in Numerical Recipes §6.2), and from them the
 * normal and chi-square(1) tails and binomial / hypergeometric probabilities. Accuracy is ~1e-14
 * relative, checked against scipy in the fixtures.
 */

const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313,
  -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6,
  1.5056327351493116e-7,
];

/** ln Γ(x) for x > 0. */
export function logGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  const z = x - 1;
  let a = LANCZOS[0]!;
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) a += LANCZOS[i]! / (z + i);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Exact ln(n!) below this n by summing logs (cached); Lanczos above it. */
const LOG_FACTORIAL_TABLE_SIZE = 4096;
const logFactorialTable: number[] = [0];

/** ln(n!) for a non-negative integer n. */
export function logFactorial(n: number): number {
  if (n < LOG_FACTORIAL_TABLE_SIZE) {
    while (logFactorialTable.length <= n) {
      const k = logFactorialTable.length;
      logFactorialTable.push(logFactorialTable[k - 1]! + Math.log(k));
    }
    return logFactorialTable[n]!;
  }
  return logGamma(n + 1);
}

/** ln C(n, k); -Infinity when k is outside [0, n]. */
export function logChoose(n: number, k: number): number {
  if (k < 0 || k > n) return Number.NEGATIVE_INFINITY;
  return logFactorial(n) - logFactorial(k) - logFactorial(n - k);
}

const GAMMA_EPS = 1e-15;
const GAMMA_MAX_ITER = 10_000;

/** Regularized upper incomplete gamma Q(a, x) = Γ(a, x) / Γ(a). */
export function gammaQ(a: number, x: number): number {
  if (x <= 0) return 1;
  const lnPrefix = -x + a * Math.log(x) - logGamma(a);
  if (x < a + 1) {
    // Series for P(a, x).
    let sum = 1 / a;
    let term = sum;
    for (let n = 1; n < GAMMA_MAX_ITER; n++) {
      term *= x / (a + n);
      sum += term;
      if (Math.abs(term) < Math.abs(sum) * GAMMA_EPS) break;
    }
    return 1 - sum * Math.exp(lnPrefix);
  }
  // Continued fraction for Q(a, x) (modified Lentz).
  const tiny = 1e-300;
  let b = x + 1 - a;
  let c = 1 / tiny;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < GAMMA_MAX_ITER; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < GAMMA_EPS) break;
  }
  return Math.exp(lnPrefix) * h;
}

/** Survival function of the chi-square distribution with one degree of freedom. */
export function chiSquare1Sf(x: number): number {
  return x <= 0 ? 1 : gammaQ(0.5, x / 2);
}

/** Standard normal upper tail P(Z > z). */
export function normalSf(z: number): number {
  const half = 0.5 * gammaQ(0.5, (z * z) / 2);
  return z >= 0 ? half : 1 - half;
}

/** Standard normal CDF P(Z ≤ z). */
export function normalCdf(z: number): number {
  return normalSf(-z);
}

/** Standard normal quantile: z with P(Z ≤ z) = p, by bisection on {@link normalCdf}. */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError(`normal quantile needs 0 < p < 1, got ${p}`);
  let lo = -40;
  let hi = 40;
  for (let i = 0; i < 200 && hi - lo > 1e-15; i++) {
    const mid = (lo + hi) / 2;
    if (normalCdf(mid) < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/** Binomial probability P(X = k) for X ~ Bin(n, p). */
export function binomPmf(k: number, n: number, p: number): number {
  if (k < 0 || k > n) return 0;
  if (p === 0) return k === 0 ? 1 : 0;
  if (p === 1) return k === n ? 1 : 0;
  return Math.exp(logChoose(n, k) + k * Math.log(p) + (n - k) * Math.log1p(-p));
}

/** Binomial lower tail P(X ≤ k). */
export function binomCdf(k: number, n: number, p: number): number {
  let s = 0;
  for (let i = 0; i <= Math.min(k, n); i++) s += binomPmf(i, n, p);
  return Math.min(1, s);
}

/**
 * Hypergeometric P(X = x): x successes in a draw of `draws` from a population of `total` holding
 * `successes`.
 */
export function hypergeomPmf(x: number, total: number, successes: number, draws: number): number {
  const lp =
    logChoose(successes, x) + logChoose(total - successes, draws - x) - logChoose(total, draws);
  return Number.isFinite(lp) ? Math.exp(lp) : 0;
}
