"""How the exported graphs store their weights: float16 initializers behind a Cast, and back.

Every export (codec transforms, task models) halves its files this way; onnxruntime folds the
Cast when it loads the graph, so inference runs in float32 as before. ``widen_fp16`` is the
inverse, for tools that read weights from initializers only (onnxruntime's quantiser).
"""
import copy

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def fp16_weights(proto, min_elements=1):
    """A copy storing every float32 initializer of at least ``min_elements`` values as float16
    (named ``<name>_fp16``) behind a Cast to the original name."""
    proto = copy.deepcopy(proto)
    g, casts = proto.graph, []
    for i, init in enumerate(g.initializer):
        if init.data_type != TensorProto.FLOAT or np.prod(init.dims) < min_elements:
            continue
        name, arr = init.name, numpy_helper.to_array(init)
        g.initializer[i].CopyFrom(numpy_helper.from_array(arr.astype(np.float16), name + "_fp16"))
        casts.append(helper.make_node("Cast", [name + "_fp16"], [name], to=TensorProto.FLOAT))
    nodes = casts + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    onnx.checker.check_model(proto)
    return proto


def widen_fp16(proto):
    """A copy whose fp16-stored weights (initializer -> Cast) are float32 initializers again."""
    proto = copy.deepcopy(proto)
    g = proto.graph
    inits = {i.name: i for i in g.initializer}
    kept = []
    for n in g.node:
        if n.op_type == "Cast" and n.input[0] in inits and inits[n.input[0]].data_type == TensorProto.FLOAT16:
            arr = numpy_helper.to_array(inits[n.input[0]]).astype(np.float32)
            g.initializer.append(numpy_helper.from_array(arr, n.output[0]))
            g.initializer.remove(inits.pop(n.input[0]))
        else:
            kept.append(n)
    del g.node[:]
    g.node.extend(kept)
    return proto
