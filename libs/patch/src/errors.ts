/** Bad patch input: direction file, plan options, or a checkpoint the plan cannot apply to. */
export class PatchError extends Error {
  override readonly name = "PatchError";
}
