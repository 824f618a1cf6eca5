"""Unit tests of the task scripts (no data folder, no cache): python3 -m pytest training/tasks -q"""
import argparse
import os
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import classify  # noqa: E402
import export  # noqa: E402
import pack  # noqa: E402
import segment  # noqa: E402
from common import apply_overrides, count_macs, grow_from, make_optimizer, parse_overrides  # noqa: E402
from nets import Classifier, SegHead, Segmenter  # noqa: E402

torch.set_num_threads(1)


def classifier(inp):
    return Classifier(classify.arch_of(classify.Config(input=inp), 10)).eval()


def segmenter(inp):
    return Segmenter(segment.arch_of(segment.Config(input=inp))).eval()


def test_mac_counter_counts_convs_transposed_convs_and_linear_layers_by_hand():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ConvTranspose2d(8, 4, 2, stride=2),
                        nn.Flatten(), nn.Linear(4 * 16 * 16, 10))
    macs, params = count_macs(net, torch.zeros(2, 3, 8, 8))
    assert macs == 8 * 8 * 8 * 3 * 9 + 8 * 8 * 8 * 4 * 4 + 1024 * 10
    assert params == sum(p.numel() for p in net.parameters())


def test_latent_classifier_needs_at_most_half_the_rgb_macs_and_cheap_rgb_matches_it():
    latent = count_macs(classifier("latent"), torch.zeros(1, 64, 28, 28, dtype=torch.int16))[0]
    rgb = count_macs(classifier("rgb"), torch.zeros(1, 3, 224, 224))[0]
    cheap = count_macs(classifier("rgb-cheap"), torch.zeros(1, 3, 224, 224))[0]
    assert latent <= 0.5 * rgb
    assert abs(cheap - latent) < 0.1 * latent


def test_every_classifier_shares_the_same_trunk():
    shapes = [[p.shape for p in classifier(i).trunk.parameters()] for i in ("latent", "rgb", "rgb-cheap")]
    assert shapes[0] == shapes[1] == shapes[2]


def test_segmenters_predict_at_eight_times_the_latent_size():
    out = segmenter("latent")(torch.zeros(1, 64, 6, 7, dtype=torch.int16))
    assert out.shape == (1, 11, 48, 56)
    assert segmenter("rgb")(torch.rand(1, 3, 48, 56)).shape == (1, 11, 48, 56)


def test_overrides_reject_unknown_keys_and_bad_values():
    with pytest.raises(SystemExit):
        parse_overrides(classify.Config, ["--no_such_key", "1"])
    with pytest.raises(SystemExit):
        apply_overrides(classify.Config(), {"epochs": "many"})
    with pytest.raises(SystemExit):
        apply_overrides(classify.Config(), {"input": "jpeg"}, classify.CHOICES)
    cfg = apply_overrides(classify.Config(), parse_overrides(classify.Config, ["--lr=0.5", "--flip", "false"]))
    assert cfg.lr == 0.5 and cfg.flip is False


def test_a_step_draws_the_same_batch_every_time_so_resume_is_exact():
    cfg = classify.Config(input="latent", batch_size=4)
    rng = np.random.default_rng(0)
    x = rng.integers(-3, 4, (10, 64, 28, 28)).astype(np.int16)
    train = (x, -x, np.arange(10, dtype=np.uint8))
    a, b = classify.batch_at(7, cfg, train, 2), classify.batch_at(7, cfg, train, 2)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], classify.batch_at(6, cfg, train, 2)[0])


def test_a_batch_says_which_images_and_flips_it_drew_so_the_teacher_matches():
    cfg = classify.Config(input="latent", batch_size=6, pad=0)
    rng = np.random.default_rng(1)
    x = rng.integers(-3, 4, (12, 64, 28, 28)).astype(np.int16)
    train = (x, -x, np.arange(12, dtype=np.uint8))
    batch, labels, idx, flipped = classify.batch_at(5, cfg, train, 2)
    assert flipped.any() and not flipped.all()
    for row, (i, f) in enumerate(zip(idx, flipped)):
        assert torch.equal(batch[row], torch.from_numpy(-x[i] if f else x[i]))
        assert labels[row] == i


def test_distillation_loss_is_zero_only_where_the_student_matches_the_teacher():
    t = torch.randn(5, 10)
    assert classify.distill_loss(t.clone(), t, 4.0).abs().item() < 1e-5
    assert classify.distill_loss(torch.zeros(5, 10), t, 4.0).item() > 1e-3


def test_segmentation_crops_of_latents_and_masks_stay_aligned():
    cfg = segment.Config(input="latent", batch_size=3, crop=2)
    lat = np.arange(2 * 64 * 4 * 5, dtype=np.int16).reshape(2, 64, 4, 5)
    masks = np.kron(lat[:, 0] % 11, np.ones((8, 8), np.int16)).astype(np.uint8)  # each latent pixel -> 8x8
    flipped = lat[:, :, :, ::-1].copy()
    x, y, where = segment.batch_at(3, cfg, (lat, flipped, masks))
    assert torch.equal((x[:, 0].long() % 11).repeat_interleave(8, 1).repeat_interleave(8, 2), y)
    # a teacher whose half-resolution logits are one-hot of the mask (and of the flipped mask for
    # flipped crops) must be cropped to the same place: its argmax is the crop's labels
    half = masks[:, ::2, ::2]
    onehot = np.stack([np.eye(11, dtype=np.float16)[m].transpose(2, 0, 1) * 10 for m in half])
    onehot_flip = np.stack([np.eye(11, dtype=np.float16)[m[:, ::-1]].transpose(2, 0, 1) * 10 for m in half])
    teacher = np.stack([onehot, onehot_flip], 1)
    assert torch.equal(segment.teacher_at(teacher, where, cfg.crop).argmax(1), y)


def test_a_pixel_segmenters_crops_and_its_teachers_stay_aligned_with_the_masks():
    cfg = segment.Config(input="decoded", batch_size=4, crop=2)
    blocks = np.random.default_rng(0).integers(0, 11, (2, 4, 5))
    masks = np.kron(blocks, np.ones((8, 8), np.int64)).astype(np.uint8)   # one label per 8x8 block
    pixels = np.repeat(masks[..., None], 3, axis=3)                         # every pixel says its label
    x, y, where = segment.batch_at(5, cfg, (pixels, None, masks))
    assert where[1].any() and not where[1].all()                            # flipped and unflipped crops
    assert torch.equal((x[:, 0] * 255).round().long(), y)
    # the teacher's half-resolution logits of the image and of its flip, one-hot of the labels
    onehot = [np.stack([np.eye(11, dtype=np.float16)[m[::2, ::2]].transpose(2, 0, 1) * 10
                        for m in ms]) for ms in (masks, masks[:, :, ::-1])]
    got = segment.teacher_at(np.stack(onehot, 1), where, cfg.crop).argmax(1)
    assert torch.equal(got, y)


def test_segmentation_distillation_is_zero_at_the_teacher_and_ignores_void():
    t = torch.randn(2, 11, 4, 4)
    y = torch.randint(0, 11, (2, 4, 4))
    w = torch.rand(11) + 0.5
    assert segment.distill_loss(t.clone(), t, 1.0, y, w).abs().item() < 1e-5
    other = torch.randn(2, 11, 4, 4)
    assert segment.distill_loss(other, t, 1.0, y, w).item() > 1e-3
    void = torch.full_like(y, segment.VOID)
    assert segment.distill_loss(other, t, 1.0, void, w).item() == 0.0


def test_channel_distillation_weighs_a_small_class_no_less_than_a_large_one():
    torch.manual_seed(0)
    t = torch.randn(2, segment.CLASSES, 16, 16)
    assert segment.channel_distill_loss(t.clone(), t, 1.0).abs().item() < 1e-5
    # a constant added to a class's map changes no distribution over positions
    assert segment.channel_distill_loss(t + torch.arange(11.0).view(1, 11, 1, 1), t, 1.0).abs().item() < 1e-5
    # the teacher puts class 2 on one pixel and class 0 on a quarter of the crop: a student that
    # misses the one pixel loses no less than one that misses the quarter, 64 times its area
    big, small = torch.zeros(1, 11, 16, 16), torch.zeros(1, 11, 16, 16)
    big[0, 0, :8, :8] = small[0, 2, 5, 5] = 10.0
    teacher = big + small
    miss_big = segment.channel_distill_loss(small, teacher, 1.0).item()
    miss_small = segment.channel_distill_loss(big, teacher, 1.0).item()
    assert miss_small >= miss_big > 1e-2
    with pytest.raises(SystemExit, match="give --teacher"):
        segment.check_config(segment.Config(kd_loss="channel"))


def test_miou_ignores_absent_classes_and_counts_pixel_accuracy():
    conf = np.zeros((11, 11), np.int64)
    conf[0, 0], conf[0, 1], conf[1, 1] = 3, 1, 4
    s = segment.scores(conf)
    assert s["per_class_iou"][0] == pytest.approx(3 / 4) and s["per_class_iou"][1] == pytest.approx(4 / 5)
    assert s["miou"] == pytest.approx((3 / 4 + 4 / 5) / 2)
    assert s["pixel_accuracy"] == pytest.approx(7 / 8)


SYNTH_SKIP = dict(latent_stem="synthesis", synth_skip=32, blocks=4)   # seg-latent-ls-f8-q1 0.3.0
SYNTH_BLOCK = dict(SYNTH_SKIP, synth_blocks=1)                         # seg-latent-ls-f8-q2 0.5.0
SYNTH_FUSE = dict(SYNTH_SKIP, synth_blocks=2, fuse=48)                 # a fuse block at 1/4


@pytest.mark.parametrize("train", [False, True])
def test_the_synthesis_stem_is_frozen_unless_asked_and_its_blocks_feed_both_branches(train):
    arch = segment.arch_of(segment.Config(synth_train=train, **SYNTH_BLOCK))
    assert arch["synth_blocks"] == 1 and arch["synth_block_width"] == 48
    assert arch.get("synth_train", False) is train
    net = Segmenter(arch)
    assert net.stem.deconv.weight.requires_grad is train and net.stem.deconv.bias.requires_grad is train
    optimised = {id(p) for g in make_optimizer(net, "adamw", 1e-3, 1e-4).param_groups for p in g["params"]}
    assert (id(net.stem.deconv.weight) in optimised) is train
    # the inverse GDN's parameters are buffers: never optimised (they must stay positive)
    assert {"stem.beta", "stem.gamma"} <= {n for n, _ in net.named_buffers()}
    y = torch.randint(-3, 4, (2, 64, 5, 6), dtype=torch.int16)
    x, skip = net.stem(y)
    assert x.shape == (2, 64 + 64, 5, 6) and skip.shape == (2, 32, 10, 12)
    assert net(y).shape == (2, 11, 40, 48)


@pytest.mark.parametrize("task,inp,extra", [("classify", "latent", {}), ("classify", "rgb-cheap", {}),
                                            ("segment", "latent", {}), ("segment", "rgb", {}),
                                            ("segment", "latent", SYNTH_SKIP),
                                            ("segment", "latent", SYNTH_BLOCK),
                                            ("segment", "latent", SYNTH_FUSE),
                                            ("classify", "latent", dict(latent_stem="synthesis",
                                                                        latent_kernel=1, blocks="1,2,2"))])
def test_exported_graphs_follow_the_contract_and_match_torch(task, inp, extra):
    arch = (classify.arch_of(classify.Config(input=inp, **extra), 10) if task == "classify"
            else segment.arch_of(segment.Config(input=inp, **extra)))
    net = (Classifier if task == "classify" else Segmenter)(arch).eval()
    wrapper, example, in_spec, out_specs, dynamic, _ = export.graph_spec(arch)
    graph = wrapper(net).eval()
    proto = export.to_onnx(graph, example, in_spec, out_specs, dynamic)
    rng = np.random.default_rng(0)
    shape = [3] + [d if isinstance(d, int) else 0 for d in in_spec["dims"][1:]]
    if inp == "latent":
        shape[2:] = [28, 28] if task == "classify" else [6, 7]
        x = rng.integers(-4, 5, shape).astype(np.int16)
    else:
        shape[2:] = [224, 224] if task == "classify" else [48, 56]
        x = rng.random(shape, dtype=np.float32)
    report = export.check(graph, proto, arch, x)            # raises on disagreement
    assert set(report) == {"batch_3", "batch_1"}
    got = export.session(proto).run(None, {in_spec["name"]: x})
    if task == "classify":
        assert got[0].shape == (3, 5) and got[1].dtype == np.int64
        assert np.all(np.diff(got[0], axis=1) <= 0)
    else:
        assert got[0].dtype == np.uint8 and got[0].shape == (3, shape[2] * (8 if inp == "latent" else 1),
                                                              shape[3] * (8 if inp == "latent" else 1))
    assert export.onnx_macs(proto, [1] + list(example.shape[1:])) == count_macs(net, example[:1])[0]


def pack_args(tmp_path, **kw):
    base = dict(codec_id="c1", cache_dir=str(tmp_path / "cache"), parts="", files="",
                data=str(tmp_path / "data"), out=str(tmp_path / "out"), max_mb=1.0, limit=0, unpack=None,
                gzip=False)
    return argparse.Namespace(**{**base, **kw})


def test_pack_round_trip_restores_int16_latents_and_refuses_corruption(tmp_path):
    cache = tmp_path / "cache" / "tasks"
    (cache / "source").mkdir(parents=True)
    (cache / "c1").mkdir()
    lat = np.random.default_rng(0).integers(-5, 6, (6, 64, 4, 4)).astype(np.int16)
    for name in ("imagenette-train", "imagenette-train-flip", "imagenette-val"):
        np.save(cache / "c1" / f"{name}.latents.npy", lat)
    for split in ("train", "val"):
        np.save(cache / "source" / f"imagenette-{split}.labels.npy", np.arange(6, dtype=np.uint8))
    pack.pack(pack_args(tmp_path, parts="imagenette-latent"))
    back_args = pack_args(tmp_path, unpack=str(tmp_path / "out" / "c1"), cache_dir=str(tmp_path / "back"))
    pack.unpack(back_args)
    back = np.load(tmp_path / "back" / "tasks" / "c1" / "imagenette-train.latents.npy")
    assert back.dtype == np.int16 and np.array_equal(back, lat)
    with open(tmp_path / "out" / "c1" / "pack-1.bin", "r+b") as f:
        f.seek(200)
        f.write(b"\0" * 64)
    with pytest.raises(Exception):
        pack.unpack(back_args)


@pytest.mark.parametrize("gzip", [False, True])
def test_pack_splits_data_folders_into_tars_under_the_size_limit_and_restores_them(tmp_path, gzip):
    rng = np.random.default_rng(0)
    for i in range(5):
        p = tmp_path / "data" / "imagenette" / "train" / "n1" / f"{i}.JPEG"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(rng.bytes(300_000))
    pack.pack(pack_args(tmp_path, files="imagenette", max_mb=0.7, gzip=gzip))
    tars = sorted((tmp_path / "out" / "c1").glob("files-*.tar"))
    assert len(tars) == 3 and all(t.stat().st_size <= 0.7 * 2 ** 20 for t in tars)
    pack.unpack(pack_args(tmp_path, unpack=str(tmp_path / "out" / "c1"), data=str(tmp_path / "restored")))
    for i in range(5):
        rel = f"imagenette/train/n1/{i}.JPEG"
        assert (tmp_path / "restored" / rel).read_bytes() == (tmp_path / "data" / rel).read_bytes()


def test_latent_arrays_resume_after_an_interruption_and_skip_when_complete(tmp_path):
    import latents
    path = str(tmp_path / "x.npy")
    calls, killed = [], []

    def produce(a, b):
        calls.append(a)
        if len(calls) == 3 and not killed:
            killed.append(1)
            raise RuntimeError("killed")    # dies inside the second chunk of 128 rows
        return np.arange(a, b, dtype=np.int16)[:, None].repeat(2, 1)

    with pytest.raises(RuntimeError):
        latents.fill(path, (300, 2), np.int16, produce, 100)
    calls.clear()
    latents.fill(path, (300, 2), np.int16, produce, 100)
    assert calls[0] == latents.CHUNK                  # the first chunk was not recomputed
    assert np.array_equal(np.load(path)[:, 0], np.arange(300))
    assert latents.fill(path, (300, 2), np.int16, produce, 100) == 0.0


def test_init_from_another_codecs_run_is_refused_unless_asked_and_then_takes_this_codecs_parts(tmp_path):
    from common import load_init
    os.makedirs(tmp_path / "tasks" / "new")
    (tmp_path / "tasks" / "new" / "meta.json").write_text('{"codec": {"analysis_sha256": "new"}}')
    net = nn.Linear(2, 2)
    arch = {"kind": "test"}
    torch.save({"arch": arch, "model": {k: v + 1 for k, v in net.state_dict().items()},
                "codec": {"analysis_sha256": "old"}, "best": {"val_miou": 0.5}}, tmp_path / "old.pt")
    cfg = argparse.Namespace(init=str(tmp_path / "old.pt"), input="latent", cache_dir=str(tmp_path),
                             codec_id="new", init_other_codec=False)
    reset = []
    before = net.weight.detach().clone()
    with pytest.raises(SystemExit, match="another codec's latents"):
        load_init(net, cfg, arch, "val_miou", lambda: reset.append(1))
    assert torch.equal(net.weight, before) and not reset
    with pytest.raises(SystemExit, match="another architecture"):
        load_init(net, cfg, {"kind": "other"}, "val_miou", lambda: reset.append(1))
    cfg.init_other_codec = True
    load_init(net, cfg, arch, "val_miou", lambda: reset.append(1))
    assert torch.equal(net.weight, before + 1) and reset == [1]
    (tmp_path / "tasks" / "new" / "meta.json").write_text('{"codec": {"analysis_sha256": "old"}}')
    load_init(net, cfg, arch, "val_miou", lambda: reset.append(1))
    assert reset == [1]                             # the same codec: its parts are the init's own


def test_init_grow_adds_residual_blocks_that_start_as_the_identity_and_refuses_anything_else(tmp_path):
    from common import load_init
    os.makedirs(tmp_path / "tasks" / "c")
    (tmp_path / "tasks" / "c" / "meta.json").write_text('{"codec": {"analysis_sha256": "c"}}')
    small = segment.arch_of(segment.Config(input="latent", blocks=1, width=16, up="8,8"))
    torch.manual_seed(0)
    init = Segmenter(small)
    with torch.no_grad():                           # no zero scales left: every block does something
        for v in init.parameters():
            v.add_(0.1 * torch.randn_like(v))
    torch.save({"arch": small, "model": init.state_dict(), "codec": {"analysis_sha256": "c"},
                "best": {"val_miou": 0.5}}, tmp_path / "small.pt")
    cfg = argparse.Namespace(init=str(tmp_path / "small.pt"), input="latent", cache_dir=str(tmp_path),
                             codec_id="c", init_other_codec=False)
    x = torch.randint(-3, 4, (1, 64, 6, 8), dtype=torch.int16)
    big = segment.arch_of(segment.Config(input="latent", blocks=2, width=16, up="8,8"))
    with pytest.raises(SystemExit, match="another architecture"):
        load_init(Segmenter(big), cfg, big, "val_miou", lambda: None)
    grown = Segmenter(big)
    load_init(grown, cfg, big, "val_miou", lambda: None, (Segmenter, x))
    with torch.no_grad():
        assert torch.allclose(grown.eval()(x), init.eval()(x), atol=1e-5)
        assert torch.equal(grown.head.blocks[0].conv1[0].weight, init.head.blocks[0].conv1[0].weight)
    wider = segment.arch_of(segment.Config(input="latent", blocks=2, width=24, up="8,8"))
    with pytest.raises(SystemExit, match="not a smaller network"):
        load_init(Segmenter(wider), cfg, wider, "val_miou", lambda: None, (Segmenter, x))
    not_identity = Segmenter(big)
    nn.init.ones_(not_identity.head.blocks[1].conv2[1].weight)  # an added block that is not the identity
    with pytest.raises(SystemExit, match="does not start as the init's function"):
        load_init(not_identity, cfg, big, "val_miou", lambda: None, (Segmenter, x))


def test_a_fuse_block_joins_the_skip_at_a_quarter_and_grows_from_a_head_without_one():
    for no_skip in (dict(input="latent", fuse=48), dict(SYNTH_BLOCK, synth_skip=0, fuse=48),
                    dict(input="decoded", fuse=48)):
        with pytest.raises(SystemExit, match="needs --latent_stem synthesis and --synth_skip"):
            segment.check_config(segment.Config(**no_skip))
    with pytest.raises(ValueError, match="needs one"):
        SegHead(64, 16, 1, [8, 8], 11, skip=0, fuse=8)
    without = segment.arch_of(segment.Config(**SYNTH_BLOCK))
    with_fuse = segment.arch_of(segment.Config(**dict(SYNTH_BLOCK, fuse=16)))
    assert with_fuse["fuse"] == 16 and "fuse" not in without
    torch.manual_seed(0)
    init = Segmenter(without).eval()
    with torch.no_grad():                            # no zero scales left anywhere
        for v in init.parameters():
            v.add_(0.05 * torch.randn_like(v))
    grown = Segmenter(with_fuse).eval()
    y = torch.randint(-3, 4, (2, 64, 5, 6), dtype=torch.int16)
    diff = grow_from(grown, without, init.state_dict(), Segmenter, y, "init.pt")
    assert diff <= 1e-4
    # the block sits on the 1/4 features joined with the skip (64 + 32 channels) and does work
    # once trained: a nonzero last scale changes the logits
    assert grown.head.fuse.body[0][0].in_channels == 64 + 32
    with torch.no_grad():
        grown.head.fuse.body[2][1].weight.fill_(1.0)
        assert (grown(y) - init(y)).abs().max().item() > 1e-3


@pytest.mark.parametrize("codec", ["ls-f8-q2", "ls-f8-q1"])
def test_the_shipped_codec_graphs_run_in_torch_give_onnxruntimes_latents(codec):
    import latents
    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models", codec)
    runtime = latents.TorchOnnxCodec(folder, 1, "cpu")
    yy, xx = np.mgrid[0:48, 0:64] / 64.0
    rng = np.random.default_rng(1)
    img = np.stack([np.sin(6 * xx + 3 * yy), np.cos(5 * yy), xx * yy], 0) * 0.4 + 0.5
    x = np.clip(img[None] + 0.05 * rng.standard_normal((2, 3, 48, 64)), 0, 1).astype(np.float32)
    rep = runtime.check(x)
    assert rep["latents_differing"] == 0.0
    assert rep["pixels_max_abs_diff"] <= 1 and rep["pixels_differing"] < 1e-3
    assert runtime.fingerprint == latents.OnnxCodec(folder, 1).fingerprint


def test_the_torch_runtime_refuses_an_op_it_does_not_know(tmp_path):
    import latents
    import onnx
    from onnx import TensorProto, helper
    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), str(tmp_path / "g.onnx"))
    with pytest.raises(SystemExit, match="Relu"):
        latents.OnnxGraph(str(tmp_path / "g.onnx"), "cpu")


def export_graph(tmp_path, net, arch):
    """``net`` exported as export.py does, to ``tmp_path/model.onnx``; returns the path."""
    wrapper, example, in_spec, out_specs, dynamic, _ = export.graph_spec(arch)
    proto = export.to_onnx(wrapper(net).eval(), example, in_spec, out_specs, dynamic)
    path = tmp_path / "model.onnx"
    path.write_bytes(proto.SerializeToString())
    return str(path)


def exported_teacher(tmp_path, net, arch):
    """``net`` (weights drawn away from the zero-init residuals: distinct logits) exported as
    export.py does and read back as a teacher."""
    import teacher
    for p in net.parameters():
        p.data.normal_(0, 0.05)
    return teacher.OnnxTeacher(export_graph(tmp_path, net, arch), 1)


def draw_batchnorms(net):
    """Every BatchNorm's scale, shift and statistics drawn, none left as the identity (so that
    folding must carry them over, and a block that should be the identity is not by chance)."""
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.1)
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 2.0)


def test_an_exported_rgb_classifier_teaches_with_the_logits_of_its_training_network(tmp_path):
    arch = classify.arch_of(classify.Config(input="rgb-cheap"), 10)
    net = Classifier(arch).eval()
    onnx_teacher = exported_teacher(tmp_path, net, arch)
    x = torch.rand(3, 3, 224, 224)
    with torch.no_grad():
        want = net(x)
    got = onnx_teacher(x)
    assert onnx_teacher.task == "classify" and got.shape == (3, 10)
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-4)


def test_an_exported_segmenter_teaches_with_its_logits_before_the_final_upsampling(tmp_path):
    arch = segment.arch_of(segment.Config(input="decoded"))
    net = Segmenter(arch).eval()
    onnx_teacher = exported_teacher(tmp_path, net, arch)
    x = torch.rand(2, 3, 48, 64)
    with torch.no_grad():
        want = net(x)
    got = onnx_teacher(x)
    assert onnx_teacher.task == "segment" and got.shape == (2, 11, 24, 32)
    full = torch.nn.functional.interpolate(got, scale_factor=2, mode="bilinear", align_corners=False)
    np.testing.assert_allclose(full.numpy(), want.numpy(), atol=1e-4)


def test_a_pixel_segmenter_rebuilt_from_its_onnx_file_computes_what_the_trained_network_did(tmp_path):
    import onnx_init
    arch = segment.arch_of(segment.Config(input="decoded"))
    net = Segmenter(arch).eval()
    for m in net.modules():                 # BatchNorm statistics that folding must carry over
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    exported_teacher(tmp_path, net, arch)
    path = str(tmp_path / "model.onnx")
    x = torch.rand(2, 3, 48, 64)
    with torch.no_grad():
        want = net(x)
    rebuilt = Segmenter(arch)
    onnx_init.load_onnx_weights(rebuilt, path)
    # A run started this way trains with its BatchNorms frozen: train mode computes the same.
    segment.train_mode(rebuilt, segment.Config(input="decoded", init_onnx=path))
    assert rebuilt.training and not any(m.training for m in rebuilt.modules() if isinstance(m, nn.BatchNorm2d))
    with torch.no_grad():
        np.testing.assert_allclose(rebuilt(x).numpy(), want.numpy(), atol=1e-4)
    pixels = (np.random.default_rng(0).random((1, 48, 64, 3)) * 255).astype(np.uint8)
    assert onnx_init.check_against_onnx(rebuilt, path, pixels) < 1e-4
    with pytest.raises(SystemExit):         # another architecture fails on shapes, not silently
        onnx_init.load_onnx_weights(Segmenter(segment.arch_of(segment.Config(input="decoded", blocks=3))), path)


def codec_layer(net):
    """A synthesis layer of the codec's shape (the inverse GDN's parameters positive)."""
    stem = net.stem
    rng = np.random.default_rng(1)
    w = rng.normal(0, 0.05, stem.deconv.weight.shape).astype(np.float32)
    b = rng.normal(0, 0.05, stem.deconv.bias.shape).astype(np.float32)
    gamma = rng.uniform(0.0, 0.01, stem.gamma.shape).astype(np.float32)
    beta = rng.uniform(0.5, 1.5, stem.beta.shape).astype(np.float32)
    return w, b, gamma, beta


def test_a_latent_segmenter_rebuilt_from_its_onnx_file_computes_what_the_trained_network_did(tmp_path):
    import onnx_init
    torch.manual_seed(0)
    arch = segment.arch_of(segment.Config(**SYNTH_BLOCK))
    net = Segmenter(arch).eval()
    layer = codec_layer(net)
    draw_batchnorms(net)
    net.stem.load_synthesis(*layer)
    net.stem.latents.scale.uniform_(0.2, 1.0)
    path = export_graph(tmp_path, net, arch)
    y = torch.from_numpy(np.random.default_rng(0).integers(-4, 5, (2, 64, 6, 7)).astype(np.int16))
    with torch.no_grad():
        want = net(y)
    assert want.abs().mean() > 0.02          # logits that a wrong weight would move
    rebuilt = Segmenter(arch)
    rebuilt.stem.load_synthesis(*layer)             # a run sets these from its codec first
    rebuilt.stem.latents.scale.copy_(net.stem.latents.scale)
    onnx_init.load_onnx_weights(rebuilt, path)
    segment.train_mode(rebuilt, segment.Config(init_onnx=path, **SYNTH_BLOCK))
    with torch.no_grad():
        np.testing.assert_allclose(rebuilt(y).numpy(), want.numpy(), atol=1e-4 * float(want.abs().max()))
    assert onnx_init.check_against_onnx(rebuilt, path, y.numpy()) < 1e-3
    other = Segmenter(arch)                         # another codec's synthesis layer is refused
    other.stem.load_synthesis(*[a * 1.5 for a in layer])
    with pytest.raises(SystemExit, match="not this run's codec"):
        onnx_init.load_onnx_weights(other, path)


def test_a_stitched_latent_head_computes_the_pixel_networks_head_on_the_same_features():
    import stitch
    torch.manual_seed(0)
    cfg = stitch.StitchConfig(input="latent", **SYNTH_BLOCK, trunk_blocks=2)
    latent, pixel = Segmenter(segment.arch_of(cfg)).eval(), Segmenter(stitch.trunk_arch(cfg)).eval()
    for net in (latent, pixel):                     # default convolutions, BatchNorms drawn
        draw_batchnorms(net)
    assert len(latent.head.blocks) == 4 and len(pixel.head.blocks) == 2
    kept = stitch.take_trunk(latent, pixel, cfg.trunk_blocks)
    assert any(k.startswith("blocks.3.") for k in kept) and "up.1.pw.0.weight (skip channels, zero)" in kept
    # the same 1/8 features after ``inp``, and any 1/4 skip: the same logits as the pixel head's
    f = torch.relu(torch.randn(2, 128, 6, 7))
    skip = torch.randn(2, 32, 12, 14)

    def after_inp(head, x, skip=None):
        x = head.aspp(head.blocks(x))
        for i, stage_ in enumerate(head.up):
            x = stage_(torch.cat([x, skip], 1) if i == 1 and skip is not None else x)
        return head.cls(x)

    with torch.no_grad():
        want = after_inp(pixel.head, f)
        assert want.abs().mean() > 0.02          # logits that a wrong weight would move
        np.testing.assert_allclose(after_inp(latent.head, f, skip).numpy(), want.numpy(),
                                   atol=1e-4 * float(want.abs().max()))
    cfg_bad = stitch.StitchConfig(input="latent", **SYNTH_BLOCK, trunk_blocks=5,
                                  latent_onnx="a", trunk_onnx="b")
    with pytest.raises(SystemExit, match="at least as many"):
        stitch.check_stitch(cfg_bad)


def test_an_init_with_folded_batchnorms_is_refused_without_freeze_bn(tmp_path):
    from common import load_init
    net = nn.Linear(2, 2)
    arch = {"kind": "test"}
    path = tmp_path / "stitched.pt"
    state = {"arch": arch, "model": {k: v + 1 for k, v in net.state_dict().items()}, "best": {}}
    torch.save({**state, "frozen_bn": True}, path)
    before = net.weight.detach().clone()
    with pytest.raises(SystemExit, match="--freeze_bn"):
        load_init(net, segment.Config(input="rgb", init=str(path)), arch, "val_miou", lambda: None)
    assert torch.equal(net.weight, before)
    load_init(net, segment.Config(input="rgb", init=str(path), freeze_bn=True), arch, "val_miou", lambda: None)
    assert torch.equal(net.weight, before + 1)
    torch.save(state, path)                         # a checkpoint of a run that trained its BatchNorms
    load_init(net, segment.Config(input="rgb", init=str(path)), arch, "val_miou", lambda: None)


def test_the_paired_bootstrap_sees_a_difference_only_where_the_images_show_one():
    import paired
    truth = np.array([[[0, 0, 1, 11]], [[1, 1, 0, 0]]], np.uint8)          # two 1x4 "images"
    pred = np.array([[[0, 1, 1, 0]], [[1, 1, 0, 1]]], np.uint8)
    conf = paired.confusions(pred, truth)
    assert conf.shape == (2, 11, 11) and conf[0, 0, 0] == 1 and conf[0, 0, 1] == 1 and conf[0, 1, 1] == 1
    assert conf[0].sum() == 3                                               # the void pixel is left out
    rng = np.random.default_rng(0)
    base = rng.integers(0, 50, (30, 11, 11))
    same = paired.paired_bootstrap(base, base.copy(), 200)
    assert same[0] == 0 and same[1] == [0.0, 0.0] and same[2] == 1.0
    better = base + np.diag(np.full(11, 40))[None]                          # more right on every image
    d, (lo, hi), share = paired.paired_bootstrap(better, base, 200)
    assert d > 0 and lo > 0 and share == 1.0
    d, (lo, hi), share = paired.paired_bootstrap(base, better, 200)
    assert d < 0 and hi < 0 and share == 0.0
