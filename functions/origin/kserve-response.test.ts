import { describe, expect, it } from 'vitest';
import type { Tensor } from './datatypes.ts';
import { encodeInferRequest, KServeProtocolError, parseInferResponse } from './kserve-client.ts';
import { type ModelSignature, parseInferRequest } from './kserve-request.ts';
import { encodeInferResponse } from './kserve-response.ts';

const utf8 = new TextEncoder();
const text = (b: Uint8Array) => new TextDecoder().decode(b);

describe('encodeInferResponse', () => {
  // extension_binary_data.md: "Assuming the model returns a [ 3, 2 ] tensor of data type FP32" with
  // binary_data requested, the response is the JSON header then 24 bytes.
  it('writes the binary example response: JSON header, then 24 bytes of FP32 output0', () => {
    const data = new Float32Array([1.0, 1.1, 2.0, 2.1, 3.0, 3.1]);
    const { body, headerLength, contentType } = encodeInferResponse({ modelName: 'mymodel', outputs: [{ tensor: { name: 'output0', datatype: 'FP32', shape: [3, 2], data }, binary: true }] });
    expect(contentType).toBe('application/octet-stream');
    expect(JSON.parse(text(body.subarray(0, headerLength)))).toEqual({
      model_name: 'mymodel',
      outputs: [{ name: 'output0', shape: [3, 2], datatype: 'FP32', parameters: { binary_data_size: 24 } }],
    });
    expect(body.length - headerLength!).toBe(24);
    expect(new Float32Array(body.slice(headerLength).buffer)).toEqual(data);
  });

  // required_api.md, "Inference Request Examples": the JSON response for id "42".
  it('writes the JSON example response, with the request id echoed', () => {
    const data = new Float32Array([1.0, 1.5, 2.0, 2.5, 3.0, 3.5]);
    const { body, headerLength, contentType } = encodeInferResponse({ modelName: 'mymodel', id: '42', outputs: [{ tensor: { name: 'output0', datatype: 'FP32', shape: [3, 2], data }, binary: false }] });
    expect(contentType).toBe('application/json');
    expect(headerLength).toBeUndefined();
    expect(JSON.parse(text(body))).toEqual({ model_name: 'mymodel', id: '42', outputs: [{ name: 'output0', shape: [3, 2], datatype: 'FP32', data: [1.0, 1.5, 2.0, 2.5, 3.0, 3.5] }] });
  });

  it('writes INT64 as JSON numbers and BOOL as JSON booleans', () => {
    const { body } = encodeInferResponse({
      modelName: 'm',
      modelVersion: '3',
      outputs: [
        { tensor: { name: 'classes', datatype: 'INT64', shape: [1, 2], data: new BigInt64Array([7n, -1n]) }, binary: false },
        { tensor: { name: 'flags', datatype: 'BOOL', shape: [2], data: new Uint8Array([1, 0]) }, binary: false },
      ],
    });
    const parsed = JSON.parse(text(body));
    expect(parsed.model_version).toBe('3');
    expect(parsed.outputs.map((o: { data: unknown }) => o.data)).toEqual([[7, -1], [true, false]]);
  });

  it('puts binary outputs after the JSON in listed order, from views at any offset', () => {
    const backing = new Uint8Array(11).map((_, i) => i);
    const mask: Tensor = { name: 'mask', datatype: 'UINT8', shape: [1, 2, 3], data: backing.subarray(5) };
    const scores: Tensor = { name: 'scores', datatype: 'FP32', shape: [1, 1], data: new Float32Array([0.5]) };
    const { body, headerLength } = encodeInferResponse({ modelName: 'm', outputs: [{ tensor: mask, binary: true }, { tensor: scores, binary: true }] });
    expect([...body.subarray(headerLength!, headerLength! + 6)]).toEqual([5, 6, 7, 8, 9, 10]);
    expect(new Float32Array(body.slice(headerLength! + 6).buffer)[0]).toBe(0.5);
  });
});

describe('parseInferResponse', () => {
  it('reads the KServe JSON example response', () => {
    const body = utf8.encode('{"id":"42","outputs":[{"name":"output0","shape":[3,2],"datatype":"FP32","data":[1.0,1.1,2.0,2.1,3.0,3.1]}]}');
    const res = parseInferResponse(body);
    expect(res.id).toBe('42');
    expect(res.outputs[0].shape).toEqual([3, 2]);
    expect([...res.outputs[0].data]).toEqual([...new Float32Array([1.0, 1.1, 2.0, 2.1, 3.0, 3.1])]);
  });

  it('round-trips every output form through encodeInferResponse', () => {
    const outputs: Tensor[] = [
      { name: 'scores', datatype: 'FP32', shape: [2, 2], data: new Float32Array([0.25, 0.5, 0.125, 1]) },
      { name: 'classes', datatype: 'INT64', shape: [2, 2], data: new BigInt64Array([3n, 1n, 0n, 9n]) },
      { name: 'mask', datatype: 'UINT8', shape: [1, 3], data: new Uint8Array([0, 7, 255]) },
    ];
    for (const binary of [false, true]) {
      const { body, headerLength } = encodeInferResponse({ modelName: 'm', outputs: outputs.map((tensor) => ({ tensor, binary })) });
      const res = parseInferResponse(body, headerLength);
      expect(res.modelName).toBe('m');
      res.outputs.forEach((t, i) => {
        expect([t.name, t.datatype, t.shape]).toEqual([outputs[i].name, outputs[i].datatype, outputs[i].shape]);
        expect([...t.data]).toEqual([...outputs[i].data]);
      });
    }
  });

  it('rejects a response whose binary section does not add up', () => {
    const { body, headerLength } = encodeInferResponse({ modelName: 'm', outputs: [{ tensor: { name: 'x', datatype: 'UINT8', shape: [4], data: new Uint8Array(4) }, binary: true }] });
    expect(() => parseInferResponse(body.subarray(0, body.length - 1), headerLength)).toThrow(KServeProtocolError);
    const longer = new Uint8Array(body.length + 1);
    longer.set(body);
    expect(() => parseInferResponse(longer, headerLength)).toThrow('the response has 1 bytes after its last binary output');
  });
});

describe('encodeInferRequest', () => {
  const model: ModelSignature = { name: 'seg', inputs: [{ name: 'latents', datatype: 'INT16', shape: [-1, 2, -1, -1] }], outputs: [{ name: 'mask', datatype: 'UINT8', shape: [-1, -1, -1] }], maxBatch: 8 };
  const input: Tensor = { name: 'latents', datatype: 'INT16', shape: [1, 2, 1, 2], data: new Int16Array([-1, 2, -300, 4]) };

  it('produces what the server parses back, as JSON and as binary', () => {
    for (const binaryInputs of [false, true]) {
      const { body, headerLength } = encodeInferRequest({ id: 'r1', inputs: [input], binaryInputs, outputs: [{ name: 'mask', binary: true }] });
      expect(headerLength === undefined).toBe(!binaryInputs);
      const req = parseInferRequest(body, headerLength, model);
      expect(req.id).toBe('r1');
      expect([...req.inputs[0].data]).toEqual([-1, 2, -300, 4]);
      expect(req.outputs).toEqual([{ name: 'mask', binary: true }]);
    }
  });
});
