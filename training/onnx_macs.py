"""MACs of an ONNX graph, counted from its nodes after shape inference (no runtime needed).

Shared by the codec export (``training/codec/export.py``: MACs per pixel of each transform) and the
task export (``training/tasks/export.py``: MACs of a classifier or segmenter, checked against the
torch count).
"""
import math

import onnx

from onnx_subpixel import subpixel_of


def onnx_macs(proto, input_shape):
    """MACs of Conv / ConvTranspose / Gemm / MatMul nodes for one input shape (shape inference).
    A ConvTranspose in sub-pixel form (training/onnx_subpixel.py) counts as the ConvTranspose it
    replaced: the zero taps of its phase kernel are not the model's arithmetic."""
    proto = onnx.ModelProto.FromString(proto.SerializeToString())
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    for d, v in zip(dims, input_shape):
        d.Clear()
        d.dim_value = v
    proto = onnx.shape_inference.infer_shapes(proto)
    g = proto.graph
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(g.value_info) + list(g.input) + list(g.output)}
    shapes.update({i.name: list(i.dims) for i in g.initializer})
    casts = {n.output[0]: n.input[0] for n in g.node if n.op_type == "Cast"}
    for out, src in casts.items():          # fp16 storage: the weight's shape is its initializer's
        if src in shapes and out not in shapes:
            shapes[out] = shapes[src]
    total = 0
    for n in g.node:
        of = subpixel_of(n)
        if of:      # per input pixel: Cin x Cout x k x k, as a ConvTranspose
            w = shapes[n.input[1]]
            total += math.prod(shapes[n.input[0]][1:]) * (w[0] // of["stride"] ** 2) * of["kernel"] ** 2
        elif n.op_type == "Conv":
            total += math.prod(shapes[n.output[0]][1:]) * math.prod(shapes[n.input[1]][1:])
        elif n.op_type == "ConvTranspose":
            total += math.prod(shapes[n.input[0]][1:]) * math.prod(shapes[n.input[1]][1:])
        elif n.op_type in ("Gemm", "MatMul"):
            a, b = shapes[n.input[0]], shapes[n.input[1]]
            total += math.prod(a[1:]) * b[-1 if n.op_type == "MatMul" or not _trans_b(n) else 0]
    return total // input_shape[0]


def _trans_b(node):
    return any(a.name == "transB" and a.i for a in node.attribute)
