/** Bad input to a statistic or to the report: names the field and the numbers. */
export class StatsInputError extends Error {
  override readonly name = "StatsInputError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
