"""The sub-pixel rewrite computes what the ConvTranspose computed (python3 -m pytest training -q)."""
import io
import os
import sys
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from onnx_macs import onnx_macs  # noqa: E402
from onnx_subpixel import conv_layers, subpixel  # noqa: E402
from onnx_weights import fp16_weights as fp16_storage, widen_fp16  # noqa: E402


def exported(module, shape):
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.zeros(shape),), f, dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}, "y": {0: "n", 2: "h2", 3: "w2"}})
    return onnx.load_from_string(f.getvalue())


def run(proto, x):
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


@pytest.mark.parametrize("k,s,p,op", [(5, 2, 2, 1), (3, 2, 1, 1), (4, 2, 1, 0), (6, 3, 2, 1)])
def test_same_output_for_any_input_size(k, s, p, op):
    torch.manual_seed(k * 10 + s)
    net = torch.nn.ConvTranspose2d(6, 5, k, stride=s, padding=p, output_padding=op)
    proto = exported(net.eval(), (1, 6, 7, 9))
    rewritten, report = subpixel(proto)
    assert report == [{"node": report[0]["node"], "rewritten": True, "kernel": report[0]["kernel"], "stride": s}]
    assert not any(n.op_type == "ConvTranspose" for n in rewritten.graph.node)
    for h, w in ((7, 9), (4, 13), (1, 1)):      # the graph keeps dynamic spatial axes
        x = np.random.default_rng(h).normal(size=(2, 6, h, w)).astype(np.float32)
        want = run(proto, x)
        got = run(rewritten, x)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_fp16_storage_stays_fp16_and_exact():
    torch.manual_seed(0)
    net = torch.nn.ConvTranspose2d(4, 3, 5, stride=2, padding=2, output_padding=1).eval()
    with torch.no_grad():       # weights that fp16 holds exactly, so both graphs see the same numbers
        for prm in net.parameters():
            prm.copy_(prm.half().float())
    proto = exported(net, (1, 4, 5, 5))
    stored = fp16_storage(proto)
    rewritten, _ = subpixel(stored)
    fp16 = [i for i in rewritten.graph.initializer if i.data_type == onnx.TensorProto.FLOAT16]
    assert len(fp16) == 2 and all(i.name.endswith("_fp16") for i in fp16)
    assert len(rewritten.graph.initializer) == 2       # the old weights are gone
    x = np.random.default_rng(1).normal(size=(1, 4, 6, 8)).astype(np.float32)
    np.testing.assert_allclose(run(rewritten, x), run(stored, x), atol=1e-5)


def test_widening_fp16_storage_gives_back_float_initializers_and_the_same_output():
    torch.manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.ReLU()).eval()
    proto = exported(net, (1, 3, 5, 5))
    stored = fp16_storage(proto, min_elements=16)        # the bias (6 values) stays float32
    assert sorted(i.data_type for i in stored.graph.initializer) == [onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16]
    widened = widen_fp16(stored)
    assert all(i.data_type == onnx.TensorProto.FLOAT for i in widened.graph.initializer)
    assert [n.op_type for n in widened.graph.node] == [n.op_type for n in proto.graph.node]
    x = np.random.default_rng(4).normal(size=(2, 3, 7, 9)).astype(np.float32)
    np.testing.assert_array_equal(run(widened, x), run(stored, x))


def test_leaves_grouped_transposed_convolutions_alone():
    net = torch.nn.ConvTranspose2d(4, 4, 5, stride=2, padding=2, output_padding=1, groups=2).eval()
    rewritten, report = subpixel(exported(net, (1, 4, 5, 5)))
    assert report[0]["rewritten"] is False and report[0]["why"] == "group or dilation"
    assert [n.op_type for n in rewritten.graph.node] == ["ConvTranspose"]


def test_gives_back_the_transposed_weights_and_their_macs():
    torch.manual_seed(2)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, padding=1),
                              torch.nn.ConvTranspose2d(6, 5, 5, stride=2, padding=2, output_padding=1)).eval()
    proto = exported(net, (1, 3, 6, 6))
    rewritten, _ = subpixel(proto)
    (op1, (w1, b1)), (op2, (w2, b2)) = conv_layers(rewritten)
    assert (op1, op2) == ("Conv", "ConvTranspose")
    np.testing.assert_array_equal(w2, net[1].weight.detach().numpy())
    np.testing.assert_array_equal(b2, net[1].bias.detach().numpy())
    assert onnx_macs(rewritten, [1, 3, 6, 6]) == onnx_macs(proto, [1, 3, 6, 6]) == 3 * 6 * 9 * 36 + 6 * 5 * 25 * 36
