"""The transforms rebuilt from a shipped codec's graphs compute what the graphs compute."""
import os
import sys

import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from from_onnx import compare, load_transforms  # noqa: E402

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


@pytest.mark.parametrize("codec", ["ls-f8-q2", "ls-f8-q1"])
def test_rebuilt_transforms_give_the_graphs_latents_and_pixels(codec):
    torch.set_num_threads(1)
    model = load_transforms(os.path.join(REPO, "models", codec)).eval()
    image = Image.open(os.path.join(REPO, "test", "fixtures", "kodim23.png")).convert("RGB").crop((0, 0, 256, 192))
    differ, err = compare(model, os.path.join(REPO, "models", codec), image)
    assert differ == 0.0
    assert err < 1e-4


def test_a_graph_of_another_shape_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="weight"):
        load_transforms(os.path.join(REPO, "models", "ls-f8-q2"), N=64)
