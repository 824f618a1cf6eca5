import { describe, expect, it } from 'vitest';
import { OriginError } from './errors.ts';
import { encodeInferRequest } from './kserve-client.ts';
import { type ModelSignature, parseInferRequest } from './kserve-request.ts';

const utf8 = new TextEncoder();

/** The model of the protocol documents' examples: two inputs, no batch axis. */
const MYMODEL: ModelSignature = {
  name: 'mymodel',
  inputs: [
    { name: 'input0', datatype: 'UINT32', shape: [2, 2] },
    { name: 'input1', datatype: 'BOOL', shape: [3] },
  ],
  outputs: [{ name: 'output0', datatype: 'FP32', shape: [3, 2] }],
  maxBatch: 0,
};

/** The contract's latent classifier. */
const CLS: ModelSignature = {
  name: 'cls-test',
  inputs: [{ name: 'latents', datatype: 'INT16', shape: [-1, 4, -1, -1] }],
  outputs: [
    { name: 'scores', datatype: 'FP32', shape: [-1, 5] },
    { name: 'classes', datatype: 'INT64', shape: [-1, 5] },
  ],
  maxBatch: 16,
};

function json(value: unknown): Uint8Array {
  return utf8.encode(JSON.stringify(value));
}

function binaryBody(header: unknown, ...parts: Uint8Array[]): { body: Uint8Array; headerLength: number } {
  const head = json(header);
  const body = new Uint8Array(head.length + parts.reduce((n, p) => n + p.length, 0));
  body.set(head, 0);
  let o = head.length;
  for (const p of parts) {
    body.set(p, o);
    o += p.length;
  }
  return { body, headerLength: head.length };
}

function badRequest(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(OriginError);
    expect((e as OriginError).code).toBe('BAD_REQUEST');
    return (e as OriginError).message;
  }
  throw new Error('expected a BAD_REQUEST');
}

const latents = (shape: number[], values?: number[]) => ({ name: 'latents', datatype: 'INT16', shape, data: values ?? new Array(shape.reduce((a, b) => a * b, 1)).fill(0) });

describe('the KServe v2 documentation examples', () => {
  // required_api.md, "Inference Request Examples": the request as printed there.
  const kserveJsonExample = {
    id: '42',
    inputs: [
      { name: 'input0', shape: [2, 2], datatype: 'UINT32', data: [1, 2, 3, 4] },
      { name: 'input1', shape: [3], datatype: 'BOOL', data: [true] },
    ],
    outputs: [{ name: 'output0' }],
  };

  it('rejects the JSON example as printed, whose BOOL input has 1 value for shape [3], saying so', () => {
    expect(badRequest(() => parseInferRequest(json(kserveJsonExample), undefined, MYMODEL))).toBe("input 'input1' has 1 elements in 'data'; shape [3] needs 3");
  });

  it('parses the JSON example once input1 carries its 3 values', () => {
    const fixed = structuredClone(kserveJsonExample);
    fixed.inputs[1].data = [true, false, true];
    const req = parseInferRequest(json(fixed), undefined, MYMODEL);
    expect(req.id).toBe('42');
    expect(req.inputs.map((t) => [t.name, t.datatype, t.shape])).toEqual([
      ['input0', 'UINT32', [2, 2]],
      ['input1', 'BOOL', [3]],
    ]);
    expect([...req.inputs[0].data]).toEqual([1, 2, 3, 4]);
    expect(req.inputs[0].data).toBeInstanceOf(Uint32Array);
    expect([...req.inputs[1].data]).toEqual([1, 0, 1]);
    expect(req.outputs).toEqual([{ name: 'output0', binary: false }]);
  });

  it('accepts data in its natural nested form as well as flattened', () => {
    const nested = structuredClone(kserveJsonExample);
    (nested.inputs[0] as { data: unknown }).data = [
      [1, 2],
      [3, 4],
    ];
    nested.inputs[1].data = [true, false, true];
    expect([...parseInferRequest(json(nested), undefined, MYMODEL).inputs[0].data]).toEqual([1, 2, 3, 4]);
  });

  // extension_binary_data.md, "Examples": 16 bytes of UINT32 then 3 bytes of BOOL after the JSON.
  const tritonBinaryExample = {
    model_name: 'mymodel',
    inputs: [
      { name: 'input0', shape: [2, 2], datatype: 'UINT32', parameters: { binary_data_size: 16 } },
      { name: 'input1', shape: [3], datatype: 'BOOL', parameters: { binary_data_size: 3 } },
    ],
    outputs: [{ name: 'output0', parameters: { binary_data: true } }],
  };
  const input0 = new Uint8Array(new Uint32Array([7, 0x01020304, 0xffffffff, 42]).buffer);
  const input1 = new Uint8Array([1, 0, 1]);

  it('parses the binary example: 19 bytes after an Inference-Header-Content-Length JSON header', () => {
    const { body, headerLength } = binaryBody(tritonBinaryExample, input0, input1);
    expect(body.length - headerLength).toBe(19);
    const req = parseInferRequest(body, headerLength, MYMODEL);
    expect([...req.inputs[0].data]).toEqual([7, 0x01020304, 0xffffffff, 42]);
    expect([...req.inputs[1].data]).toEqual([1, 0, 1]);
    expect(req.outputs).toEqual([{ name: 'output0', binary: true }]);
  });

  it('rejects the binary example with a byte missing from the binary section', () => {
    const { body, headerLength } = binaryBody(tritonBinaryExample, input0, input1.subarray(0, 2));
    expect(badRequest(() => parseInferRequest(body, headerLength, MYMODEL))).toBe(
      `the binary section has 18 bytes after the ${headerLength}-byte JSON header, but the inputs' binary_data_size add up to 19`,
    );
  });

  it('rejects a binary_data_size that disagrees with datatype and shape', () => {
    const header = structuredClone(tritonBinaryExample);
    header.inputs[0].parameters.binary_data_size = 12;
    const { body, headerLength } = binaryBody(header, input0.subarray(0, 12), input1);
    expect(badRequest(() => parseInferRequest(body, headerLength, MYMODEL))).toBe("input 'input0' declares binary_data_size 12, but UINT32 [2, 2] takes 4 x 4 = 16 bytes");
  });

  it('rejects a BOOL byte other than 0 or 1', () => {
    const { body, headerLength } = binaryBody(tritonBinaryExample, input0, new Uint8Array([1, 2, 0]));
    expect(badRequest(() => parseInferRequest(body, headerLength, MYMODEL))).toBe("input 'input1': BOOL element 1 is byte 2; must be 0 or 1");
  });
});

describe('parseInferRequest against a batched model', () => {
  it('decodes binary INT16 latents at any byte alignment after the header', () => {
    for (const pad of [0, 1, 2, 3]) {
      const data = new Int16Array([1, -2, 3, -32768, 32767, 0, 5, 6]);
      const { body, headerLength } = encodeInferRequest({ id: 'x'.repeat(pad + 1), inputs: [{ name: 'latents', datatype: 'INT16', shape: [1, 4, 1, 2], data }] });
      const req = parseInferRequest(body!, headerLength, CLS);
      expect([...req.inputs[0].data]).toEqual([...data]);
      expect(req.rows).toBe(1);
    }
  });

  it('copies misaligned binary data out of a Node Buffer, whose slice() is a view', () => {
    const data = new Int16Array([1, -2, 3, -4, 5, -6, 7, -8]);
    const encode = (id: string) => encodeInferRequest({ id, inputs: [{ name: 'latents', datatype: 'INT16', shape: [1, 4, 1, 2], data }] });
    const { body, headerLength } = [encode('a'), encode('ab')].find((e) => e.headerLength! % 2 === 1)!;
    // Small Buffers share Node's 8 KiB pool, so the bytes sit at some offset in a larger ArrayBuffer.
    Buffer.from('x'.repeat(3));
    const pooled = Buffer.from(body);
    expect([...parseInferRequest(pooled, headerLength, CLS).inputs[0].data]).toEqual([...data]);
  });

  it('returns every output as JSON unless binary_data_output or binary_data says otherwise', () => {
    const inputs = [latents([2, 4, 1, 1])];
    expect(parseInferRequest(json({ inputs }), undefined, CLS).outputs).toEqual([
      { name: 'scores', binary: false },
      { name: 'classes', binary: false },
    ]);
    expect(parseInferRequest(json({ inputs, parameters: { binary_data_output: true } }), undefined, CLS).outputs).toEqual([
      { name: 'scores', binary: true },
      { name: 'classes', binary: true },
    ]);
    const some = { inputs, parameters: { binary_data_output: true }, outputs: [{ name: 'classes', parameters: { binary_data: false } }] };
    expect(parseInferRequest(json(some), undefined, CLS).outputs).toEqual([{ name: 'classes', binary: false }]);
  });

  it('counts rows on the batch axis', () => {
    expect(parseInferRequest(json({ inputs: [latents([3, 4, 2, 2])] }), undefined, CLS).rows).toBe(3);
  });

  it.each([
    ['a wrong datatype', { inputs: [{ ...latents([1, 4, 1, 1]), datatype: 'FP32' }] }, "input 'latents' has datatype FP32; model 'cls-test' expects INT16"],
    ['a datatype KServe does not have', { inputs: [{ ...latents([1, 4, 1, 1]), datatype: 'FLOAT' }] }, "input 'latents' has datatype FLOAT (not a KServe datatype); model 'cls-test' expects INT16"],
    ['a wrong rank', { inputs: [latents([4, 1, 1])] }, "input 'latents' has shape [4, 1, 1] (rank 3); model 'cls-test' expects [-1, 4, -1, -1] (rank 4)"],
    ['a wrong channel count', { inputs: [latents([1, 3, 1, 1])] }, "input 'latents' has shape [1, 3, 1, 1]; model 'cls-test' expects [-1, 4, -1, -1]: dimension 1 is 3, must be 4"],
    ['a zero dimension', { inputs: [latents([1, 4, 0, 1])] }, "input 'latents' has shape [1,4,0,1]; every dimension must be an integer from 1 to 2147483647"],
    ['a fractional dimension', { inputs: [{ ...latents([1, 4, 1, 1]), shape: [1, 4, 1.5, 1] }] }, "input 'latents' has shape [1,4,1.5,1]; every dimension must be an integer from 1 to 2147483647"],
    ['too few values', { inputs: [latents([1, 4, 1, 1], [1, 2, 3])] }, "input 'latents' has 3 elements in 'data'; shape [1, 4, 1, 1] needs 4"],
    ['too many values', { inputs: [latents([1, 4, 1, 1], [1, 2, 3, 4, 5])] }, "input 'latents' has more than 4 elements in 'data'; shape [1, 4, 1, 1] needs 4"],
    ['a value out of INT16 range', { inputs: [latents([1, 4, 1, 1], [1, 2, 40000, 4])] }, "input 'latents': data[2] is 40000; INT16 needs an integer in [-32768, 32767]"],
    ['a fractional integer', { inputs: [latents([1, 4, 1, 1], [1, 2.5, 3, 4])] }, "input 'latents': data[1] is 2.5; INT16 needs an integer in [-32768, 32767]"],
    ['a string value', { inputs: [latents([1, 4, 1, 1], [1, '2' as unknown as number, 3, 4])] }, 'input \'latents\': data[1] is "2"; INT16 needs an integer in [-32768, 32767]'],
    ['an unknown input', { inputs: [latents([1, 4, 1, 1]), { ...latents([1]), name: 'image' }] }, "model 'cls-test' has no input 'image'; its inputs: 'latents'"],
    ['an input given twice', { inputs: [latents([1, 4, 1, 1]), latents([1, 4, 1, 1])] }, "input 'latents' is given twice"],
    ['no inputs', { inputs: [] }, "'inputs' must be a non-empty array of tensors"],
    ['a batch over the maximum', { inputs: [latents([17, 4, 1, 1])] }, "batch size 17 is over the max batch size 16 of model 'cls-test'; split the request"],
    ['no data', { inputs: [{ name: 'latents', datatype: 'INT16', shape: [1, 4, 1, 1] }] }, "input 'latents' has no data: give 'data' (JSON) or parameters.binary_data_size (binary extension)"],
    ['an unknown output', { inputs: [latents([1, 4, 1, 1])], outputs: [{ name: 'logits' }] }, "model 'cls-test' has no output 'logits'; its outputs: 'scores', 'classes'"],
    ['the classification extension', { inputs: [latents([1, 4, 1, 1])], outputs: [{ name: 'scores', parameters: { classification: 3 } }] }, "output 'scores': the classification extension is not supported; the model returns top-k itself"],
    ['a non-string id', { id: 42, inputs: [latents([1, 4, 1, 1])] }, "'id' must be a string of at most 256 characters"],
  ])('rejects %s, saying exactly what was wrong', (_what, body, message) => {
    expect(badRequest(() => parseInferRequest(json(body), undefined, CLS))).toBe(message);
  });

  it('rejects a huge declared shape before allocating anything', () => {
    const huge = json({ inputs: [{ name: 'latents', datatype: 'INT16', shape: [1, 4, 65536, 65536], parameters: { binary_data_size: 8 } }] });
    expect(badRequest(() => parseInferRequest(huge, huge.length, CLS))).toBe("input 'latents' declares binary_data_size 8, but INT16 [1, 4, 65536, 65536] takes 17179869184 x 2 = 34359738368 bytes");
    const past2to53 = json({ inputs: [{ name: 'latents', datatype: 'INT16', shape: [1, 4, 2147483647, 2147483647], data: [] }] });
    expect(badRequest(() => parseInferRequest(past2to53, undefined, CLS))).toBe("input 'latents' shape [1, 4, 2147483647, 2147483647] is too large");
    const jsonClaim = json({ inputs: [{ name: 'latents', datatype: 'INT16', shape: [1, 4, 65536, 65536], data: [1, 2] }] });
    expect(badRequest(() => parseInferRequest(jsonClaim, undefined, CLS))).toBe("input 'latents' has 2 elements in 'data'; shape [1, 4, 65536, 65536] needs 17179869184");
  });

  it('rejects inputs that disagree on the batch size', () => {
    const two: ModelSignature = { ...CLS, inputs: [CLS.inputs[0], { name: 'mask', datatype: 'UINT8', shape: [-1, 2] }] };
    const body = json({ inputs: [latents([2, 4, 1, 1]), { name: 'mask', datatype: 'UINT8', shape: [3, 2], data: [0, 0, 0, 0, 0, 0] }] });
    expect(badRequest(() => parseInferRequest(body, undefined, two))).toBe("inputs disagree on the batch size (dimension 0): 'latents' has 2, 'mask' has 3");
  });

  it('rejects a missing input of a two-input model', () => {
    const two: ModelSignature = { ...CLS, inputs: [CLS.inputs[0], { name: 'mask', datatype: 'UINT8', shape: [-1, 2] }] };
    expect(badRequest(() => parseInferRequest(json({ inputs: [latents([1, 4, 1, 1])] }), undefined, two))).toBe("missing input 'mask' for model 'cls-test'");
  });

  it('rejects a header length past the body, or a header that is not JSON', () => {
    const body = json({ inputs: [latents([1, 4, 1, 1])] });
    expect(badRequest(() => parseInferRequest(body, body.length + 1, CLS))).toMatch(/^Inference-Header-Content-Length is \d+ but the body has \d+ bytes/);
    expect(badRequest(() => parseInferRequest(body, 10, CLS))).toMatch(/^the inference header is not valid UTF-8 JSON/);
    expect(badRequest(() => parseInferRequest(json([1, 2]), undefined, CLS))).toBe('the inference header must be a JSON object with an inputs array');
  });

  it('refuses FP16 as JSON, in either direction', () => {
    const half: ModelSignature = { name: 'half', inputs: [{ name: 'x', datatype: 'FP16', shape: [-1, 2] }], outputs: [{ name: 'y', datatype: 'FP16', shape: [-1, 2] }], maxBatch: 4 };
    expect(badRequest(() => parseInferRequest(json({ inputs: [{ name: 'x', datatype: 'FP16', shape: [1, 2], data: [1, 2] }] }), undefined, half))).toBe(
      "input 'x' is FP16, which has no JSON form; send it with the binary extension",
    );
    const { body, headerLength } = binaryBody({ inputs: [{ name: 'x', datatype: 'FP16', shape: [1, 2], parameters: { binary_data_size: 4 } }] }, new Uint8Array(4));
    expect(badRequest(() => parseInferRequest(body, headerLength, half))).toBe("output 'y' is FP16, which has no JSON form; request it with binary_data: true");
  });

  it('reads INT64 JSON values as BigInt', () => {
    const ids: ModelSignature = { name: 'ids', inputs: [{ name: 'x', datatype: 'INT64', shape: [-1] }], outputs: [{ name: 'y', datatype: 'FP32', shape: [-1] }], maxBatch: 4 };
    const req = parseInferRequest(json({ inputs: [{ name: 'x', datatype: 'INT64', shape: [2], data: [-3, 2 ** 53 - 1] }] }), undefined, ids);
    expect([...(req.inputs[0].data as BigInt64Array)]).toEqual([-3n, 2n ** 53n - 1n]);
  });
});
