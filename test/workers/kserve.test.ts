// The KServe v2 binary tensor extension: request layout, and strict reading of both response forms.
import { describe, expect, it } from 'vitest';
import { KserveError, decodeInferResponse, encodeInferRequest, int16Bytes } from '../../functions/edge/kserve.ts';

const text = (s: string) => new TextEncoder().encode(s);

describe('encodeInferRequest', () => {
  it('puts the JSON header first and the raw tensor bytes right after it', () => {
    const data = int16Bytes(Int16Array.of(1, -1, 256));
    const { body, headerLength } = encodeInferRequest('r1', 'latents', [1, 3, 1, 1], data, ['mask']);

    expect(JSON.parse(new TextDecoder().decode(body.subarray(0, headerLength)))).toEqual({
      id: 'r1',
      inputs: [{ name: 'latents', datatype: 'INT16', shape: [1, 3, 1, 1], parameters: { binary_data_size: 6 } }],
      outputs: [{ name: 'mask', parameters: { binary_data: true } }],
    });
    expect([...body.subarray(headerLength)]).toEqual([1, 0, 0xff, 0xff, 0, 1]);
  });
});

describe('decodeInferResponse', () => {
  function binary(outputs: object[], blobs: number[][]) {
    const header = text(JSON.stringify({ outputs }));
    const body = new Uint8Array([...header, ...blobs.flat()]);
    return { body, length: header.length };
  }

  it('reads FP32 and INT64 binary outputs, INT64 without BigInt', () => {
    const scores = new Uint8Array(new Float32Array([0.75, 0.25]).buffer);
    const classes = new Uint8Array(new BigInt64Array([7n, 4294967298n]).buffer);
    const { body, length } = binary(
      [
        { name: 'scores', datatype: 'FP32', shape: [1, 2], parameters: { binary_data_size: 8 } },
        { name: 'classes', datatype: 'INT64', shape: [1, 2], parameters: { binary_data_size: 16 } },
      ],
      [[...scores], [...classes]],
    );
    const out = decodeInferResponse(body, length);
    expect(Array.from(out.get('scores')!.values)).toEqual([0.75, 0.25]);
    expect(Array.from(out.get('classes')!.values)).toEqual([7, 4294967298]);
  });

  it('reads plain JSON data, nested or flat', () => {
    const out = decodeInferResponse(text(JSON.stringify({ outputs: [{ name: 'mask', datatype: 'UINT8', shape: [1, 2, 2], data: [[0, 1], [2, 3]] }] })), undefined);
    expect(Array.from(out.get('mask')!.values)).toEqual([0, 1, 2, 3]);
  });

  it.each([
    ['a header length beyond the body', () => decodeInferResponse(text('{"outputs":[]}'), 99)],
    ['a header that is not JSON', () => decodeInferResponse(text('<html>'), undefined)],
    ['no outputs array', () => decodeInferResponse(text('{"error":"x"}'), undefined)],
    ['an unknown datatype', () => decodeInferResponse(text('{"outputs":[{"name":"a","datatype":"BF16","shape":[1],"data":[1]}]}'), undefined)],
    ['a binary size that does not match the shape', () => {
      const { body, length } = binary([{ name: 'a', datatype: 'FP32', shape: [2], parameters: { binary_data_size: 4 } }], [[0, 0, 0, 0]]);
      return decodeInferResponse(body, length);
    }],
    ['JSON data of the wrong length', () => decodeInferResponse(text('{"outputs":[{"name":"a","datatype":"FP32","shape":[3],"data":[1,2]}]}'), undefined)],
    ['bytes after the last output', () => {
      const { body, length } = binary([{ name: 'a', datatype: 'UINT8', shape: [1], parameters: { binary_data_size: 1 } }], [[1, 2]]);
      return decodeInferResponse(body, length);
    }],
  ])('rejects %s', (_, read) => {
    expect(read).toThrow(KserveError);
  });
});
