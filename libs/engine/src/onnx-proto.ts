/**
 * A minimal protobuf encoder for the parts of the ONNX schema the engine emits (ModelProto,
 * GraphProto, NodeProto, AttributeProto, TensorProto, ValueInfoProto). Field numbers follow
 * onnx/onnx.proto. Only writing is needed: the engine builds graphs and hands the bytes to
 * onnxruntime, it never parses them back.
 */

/** ONNX TensorProto.DataType values the engine uses. */
export const OnnxType = { FLOAT: 1, INT32: 6, INT64: 7, BOOL: 9 } as const;
/** One of {@link OnnxType}'s values. */
export type OnnxTypeId = (typeof OnnxType)[keyof typeof OnnxType];

/** A node attribute value: number (int if integral and `int` is set), float, ints, string, tensor. */
export type OnnxAttr =
  | { type: "int"; value: number }
  | { type: "float"; value: number }
  | { type: "ints"; value: readonly number[] }
  | { type: "floats"; value: readonly number[] }
  | { type: "string"; value: string }
  | { type: "tensor"; value: OnnxTensor };

/** A graph node. */
export interface OnnxNode {
  readonly op: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly name: string;
  readonly domain?: string;
  readonly attrs?: Readonly<Record<string, OnnxAttr>>;
}

/** A constant tensor (initializer or attribute) carried as raw little-endian bytes. */
export interface OnnxTensor {
  readonly name: string;
  readonly type: OnnxTypeId;
  readonly dims: readonly number[];
  readonly data: Uint8Array;
}

/** A graph input or output: name, element type and shape (numbers or symbolic names). */
export interface OnnxValueInfo {
  readonly name: string;
  readonly type: OnnxTypeId;
  readonly shape: readonly (number | string)[];
}

/** A whole graph plus the opsets it imports. */
export interface OnnxModel {
  readonly graphName: string;
  readonly nodes: readonly OnnxNode[];
  readonly initializers: readonly OnnxTensor[];
  readonly inputs: readonly OnnxValueInfo[];
  readonly outputs: readonly OnnxValueInfo[];
  readonly opsets: Readonly<Record<string, number>>;
}

/** ONNX IR version 8 goes with opset 17-18; onnxruntime 1.30 reads it. */
const IR_VERSION = 8;

/** Growable byte sink; chunks are concatenated once at the end so big tensors are copied once. */
class Writer {
  private readonly chunks: Uint8Array[] = [];
  private cur = new Uint8Array(256);
  private pos = 0;
  length = 0;

  private ensure(n: number): void {
    if (this.pos + n <= this.cur.length) return;
    this.flush();
    this.cur = new Uint8Array(Math.max(256, n));
  }
  private flush(): void {
    if (this.pos > 0) this.chunks.push(this.cur.subarray(0, this.pos));
    this.cur = new Uint8Array(256);
    this.pos = 0;
  }
  byte(b: number): void {
    this.ensure(1);
    this.cur[this.pos++] = b;
    this.length++;
  }
  varint(v: number | bigint): void {
    let x = BigInt.asUintN(64, BigInt(v));
    if (x < 128n) {
      this.byte(Number(x));
      return;
    }
    while (x >= 128n) {
      this.byte(Number(x & 127n) | 128);
      x >>= 7n;
    }
    this.byte(Number(x));
  }
  tag(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }
  bytes(field: number, data: Uint8Array): void {
    this.tag(field, 2);
    this.varint(data.length);
    if (data.length > 4096) {
      this.flush();
      this.chunks.push(data);
      this.length += data.length;
    } else {
      this.ensure(data.length);
      this.cur.set(data, this.pos);
      this.pos += data.length;
      this.length += data.length;
    }
  }
  string(field: number, s: string): void {
    this.bytes(field, new TextEncoder().encode(s));
  }
  int(field: number, v: number): void {
    this.tag(field, 0);
    this.varint(v);
  }
  float(field: number, v: number): void {
    this.tag(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.ensure(4);
    this.cur.set(b, this.pos);
    this.pos += 4;
    this.length += 4;
  }
  message(field: number, build: (w: Writer) => void): void {
    const inner = new Writer();
    build(inner);
    this.tag(field, 2);
    this.varint(inner.length);
    inner.flush();
    this.flush();
    for (const c of inner.chunks) this.chunks.push(c);
    this.length += inner.length;
  }
  finish(): Uint8Array {
    this.flush();
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }
}

function writeTensor(w: Writer, t: OnnxTensor): void {
  for (const d of t.dims) w.int(1, d);
  w.int(2, t.type);
  w.string(8, t.name);
  w.bytes(9, t.data);
}

function writeAttr(w: Writer, name: string, a: OnnxAttr): void {
  w.string(1, name);
  switch (a.type) {
    case "int":
      w.int(3, a.value);
      w.int(20, 2);
      break;
    case "float":
      w.float(2, a.value);
      w.int(20, 1);
      break;
    case "ints":
      for (const v of a.value) w.int(8, v);
      w.int(20, 7);
      break;
    case "floats":
      for (const v of a.value) w.float(7, v);
      w.int(20, 6);
      break;
    case "string":
      w.string(4, a.value);
      w.int(20, 3);
      break;
    case "tensor":
      w.message(5, (m) => writeTensor(m, a.value));
      w.int(20, 4);
      break;
  }
}

function writeValueInfo(w: Writer, v: OnnxValueInfo): void {
  w.string(1, v.name);
  w.message(2, (tp) =>
    tp.message(1, (tt) => {
      tt.int(1, v.type);
      tt.message(2, (sh) => {
        for (const d of v.shape)
          sh.message(1, (dim) => (typeof d === "number" ? dim.int(1, d) : dim.string(2, d)));
      });
    }),
  );
}

/** Serializes a model to ONNX ModelProto bytes. */
export function encodeOnnxModel(model: OnnxModel): Uint8Array {
  const w = new Writer();
  w.int(1, IR_VERSION);
  w.string(2, "abliterate");
  w.message(7, (g) => {
    for (const n of model.nodes)
      g.message(1, (nw) => {
        for (const i of n.inputs) nw.string(1, i);
        for (const o of n.outputs) nw.string(2, o);
        nw.string(3, n.name);
        nw.string(4, n.op);
        for (const [k, a] of Object.entries(n.attrs ?? {}))
          nw.message(5, (aw) => writeAttr(aw, k, a));
        if (n.domain) nw.string(7, n.domain);
      });
    g.string(2, model.graphName);
    for (const t of model.initializers) g.message(5, (tw) => writeTensor(tw, t));
    for (const v of model.inputs) g.message(11, (vw) => writeValueInfo(vw, v));
    for (const v of model.outputs) g.message(12, (vw) => writeValueInfo(vw, v));
  });
  for (const [domain, version] of Object.entries(model.opsets))
    w.message(8, (o) => {
      if (domain) o.string(1, domain);
      o.int(2, version);
    });
  return w.finish();
}
