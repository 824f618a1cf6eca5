"""MACs of an ONNX graph, counted from its nodes after shape inference (no runtime needed).

Shared by the codec export (``training/codec/export.py``: MACs per pixel of each transform) and the
task export (``training/tasks/export.py``: MACs of a classifier or segmenter, checked against the
torch count).
"""
import math

import onnx


def onnx_macs(proto, input_shape):
    """MACs of Conv / ConvTranspose / Gemm / MatMul nodes for one input shape (shape inference)."""
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
    total = 0
    for n in g.node:
        if n.op_type == "Conv":
            total += math.prod(shapes[n.output[0]][1:]) * math.prod(shapes[n.input[1]][1:])
        elif n.op_type == "ConvTranspose":
            total += math.prod(shapes[n.input[0]][1:]) * math.prod(shapes[n.input[1]][1:])
        elif n.op_type in ("Gemm", "MatMul"):
            a, b = shapes[n.input[0]], shapes[n.input[1]]
            total += math.prod(a[1:]) * b[-1 if n.op_type == "MatMul" or not _trans_b(n) else 0]
    return total // input_shape[0]


def _trans_b(node):
    return any(a.name == "transB" and a.i for a in node.attribute)
