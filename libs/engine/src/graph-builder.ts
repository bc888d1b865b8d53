import {
  type OnnxAttr,
  type OnnxModel,
  type OnnxNode,
  type OnnxTensor,
  OnnxType,
  type OnnxTypeId,
  type OnnxValueInfo,
} from "./onnx-proto.ts";

/** Attribute shorthand: integers become `int`, other numbers `float`, arrays of integers `ints`. */
export type AttrValue = number | readonly number[] | string | OnnxAttr;

function toAttr(v: AttrValue): OnnxAttr {
  if (typeof v === "string") return { type: "string", value: v };
  if (typeof v === "number")
    return Number.isInteger(v) ? { type: "int", value: v } : { type: "float", value: v };
  if (Array.isArray(v)) return { type: "ints", value: v as readonly number[] };
  return v as OnnxAttr;
}

/** Reinterprets a typed array's bytes without copying. */
function bytesOf(a: Float32Array | BigInt64Array | Int32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * Accumulates ONNX nodes and initializers with unique names. `op` returns the output name so
 * graph code reads like expressions: `const y = g.op("MatMul", [x, w])`.
 */
export class GraphBuilder {
  readonly nodes: OnnxNode[] = [];
  readonly initializers: OnnxTensor[] = [];
  readonly inputs: OnnxValueInfo[] = [];
  readonly outputs: OnnxValueInfo[] = [];
  private counter = 0;
  private readonly constCache = new Map<string, string>();

  /** A fresh value name with a readable prefix. */
  fresh(prefix: string): string {
    return `${prefix}_${this.counter++}`;
  }

  /** Adds a node with one output and returns that output's name. */
  op(
    op: string,
    inputs: readonly string[],
    attrs: Record<string, AttrValue> = {},
    domain = "",
  ): string {
    return this.opN(op, inputs, 1, attrs, domain)[0] as string;
  }

  /** Adds a node whose single output gets the given name (e.g. a graph output), avoiding an Identity copy. */
  opNamed(
    op: string,
    inputs: readonly string[],
    output: string,
    attrs: Record<string, AttrValue> = {},
  ): string {
    const conv: Record<string, OnnxAttr> = {};
    for (const [k, v] of Object.entries(attrs)) conv[k] = toAttr(v);
    this.nodes.push({ op, inputs, outputs: [output], name: this.fresh(op), attrs: conv });
    return output;
  }

  /** Adds a node with `n` outputs and returns their names. */
  opN(
    op: string,
    inputs: readonly string[],
    n: number,
    attrs: Record<string, AttrValue> = {},
    domain = "",
  ): string[] {
    const name = this.fresh(op);
    const outputs = Array.from({ length: n }, (_, i) => `${name}_out${i}`);
    const conv: Record<string, OnnxAttr> = {};
    for (const [k, v] of Object.entries(attrs)) conv[k] = toAttr(v);
    this.nodes.push(
      domain
        ? { op, inputs, outputs, name, domain, attrs: conv }
        : { op, inputs, outputs, name, attrs: conv },
    );
    return outputs;
  }

  /** Adds an f32 initializer (the bytes are referenced, not copied). */
  weight(name: string, dims: readonly number[], data: Float32Array): string {
    const expected = dims.reduce((a, b) => a * b, 1);
    if (data.length !== expected)
      throw new RangeError(
        `initializer ${name}: ${data.length} values for shape [${dims.join(", ")}] (${expected})`,
      );
    this.initializers.push({ name, type: OnnxType.FLOAT, dims, data: bytesOf(data) });
    return name;
  }

  /** An int64 constant, shared between uses. */
  i64(values: readonly number[], dims: readonly number[] = [values.length]): string {
    const key = `i64:${dims.join("x")}:${values.join(",")}`;
    const hit = this.constCache.get(key);
    if (hit) return hit;
    const name = this.fresh("c_i64");
    this.initializers.push({
      name,
      type: OnnxType.INT64,
      dims,
      data: bytesOf(BigInt64Array.from(values.map(BigInt))),
    });
    this.constCache.set(key, name);
    return name;
  }

  /** An f32 constant, shared between uses. */
  f32(values: readonly number[], dims: readonly number[] = [values.length]): string {
    const key = `f32:${dims.join("x")}:${values.join(",")}`;
    const hit = this.constCache.get(key);
    if (hit) return hit;
    const name = this.fresh("c_f32");
    this.initializers.push({
      name,
      type: OnnxType.FLOAT,
      dims,
      data: bytesOf(Float32Array.from(values)),
    });
    this.constCache.set(key, name);
    return name;
  }

  /** Declares a graph input. */
  input(name: string, type: OnnxTypeId, shape: readonly (number | string)[]): string {
    this.inputs.push({ name, type, shape });
    return name;
  }

  /** Declares `value` as a graph output under `name` (through an Identity when names differ). */
  output(value: string, name: string, type: OnnxTypeId, shape: readonly (number | string)[]): void {
    if (value !== name)
      this.nodes.push({
        op: "Identity",
        inputs: [value],
        outputs: [name],
        name: this.fresh("out"),
      });
    this.outputs.push({ name, type, shape });
  }

  /** The finished model description. */
  build(graphName: string, opsets: Record<string, number>): OnnxModel {
    return {
      graphName,
      nodes: this.nodes,
      initializers: this.initializers,
      inputs: this.inputs,
      outputs: this.outputs,
      opsets,
    };
  }
}
