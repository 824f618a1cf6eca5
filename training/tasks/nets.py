"""Task networks: classifiers (latent cResNet, RGB ResNet, cheap-stem RGB) and segmenters.

Every classifier is ``stem -> Trunk``: the trunk (BasicBlock stages at 28, 14 and 7, global pool,
FC) is the same module for every input kind, so the comparison isolates what reaching 28 x 28
costs. Every segmenter is ``stem -> SegHead``: the stem brings its input to 64 channels at 1/8
of the image side (latents already are), the head is shared. Inputs:

- latents: int16 [B,64,h,w] (cast to float and multiplied by a fixed per-channel constant).
- images: float32 [B,3,H,W] in [0,1] (normalised inside the network).

Widths and depths come from the config strings of ``classify.py`` / ``segment.py`` and are
saved in each checkpoint (``arch``) so that ``export.py`` rebuilds the same network.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def conv_bn(cin, cout, k=3, stride=1, dilation=1, groups=1, relu=True):
    layers = [nn.Conv2d(cin, cout, k, stride, padding=dilation * (k - 1) // 2,
                        dilation=dilation, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, nn.ReLU(inplace=True)) if relu else nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs with BN, identity or 1x1 projection shortcut."""

    def __init__(self, cin, cout, stride=1, dilation=1):
        super().__init__()
        self.conv1 = conv_bn(cin, cout, 3, stride, dilation)
        self.conv2 = conv_bn(cout, cout, 3, 1, dilation, relu=False)
        self.short = (nn.Identity() if stride == 1 and cin == cout
                      else conv_bn(cin, cout, 1, stride, relu=False))
        nn.init.zeros_(self.conv2[1].weight)      # zero-init residual: starts as identity

    def forward(self, x):
        return F.relu(self.conv2(self.conv1(x)) + self.short(x))


def stage(cin, cout, blocks, stride):
    return nn.Sequential(BasicBlock(cin, cout, stride),
                         *[BasicBlock(cout, cout) for _ in range(blocks - 1)])


class LatentInput(nn.Module):
    """int16 latents -> float, times a fixed per-channel constant (1/std over the train split)."""

    def __init__(self, channels):
        super().__init__()
        self.register_buffer("scale", torch.ones(channels))

    def forward(self, y):
        return y.float() * self.scale.view(1, -1, 1, 1)


class ImageInput(nn.Module):
    """[0,1] RGB -> ImageNet-normalised."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


# ---------------------------------------------------------------- classifiers

class Trunk(nn.Module):
    """Stages at 28, 14, 7 (strides 1, 2, 2), global average pool, FC."""

    def __init__(self, widths, blocks, classes):
        super().__init__()
        chans = [widths[0]] + list(widths)
        self.stages = nn.Sequential(*[stage(chans[i], chans[i + 1], blocks[i], 1 if i == 0 else 2)
                                      for i in range(len(widths))])
        self.fc = nn.Linear(widths[-1], classes)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.stages(x), 1), 1))


def latent_stem(arch):
    """cResNet: no stem, no high-resolution stages; one conv maps the latents to the trunk width.
    With ``latent_stem`` "synthesis", the latents first go through the segmenters'
    SynthesisStem (the codec's first synthesis layer, back to 1/8, concatenated with them)."""
    c = arch["latent_channels"]
    if arch.get("latent_stem") != "synthesis":
        return nn.Sequential(LatentInput(c), conv_bn(c, arch["widths"][0], arch["latent_kernel"]))
    stem = SynthesisStem(c, arch["synth_hidden"], arch["synth_out"],
                         blocks=arch.get("synth_blocks", 0),
                         block_width=arch.get("synth_block_width", 48))
    return nn.Sequential(stem, conv_bn(c + arch["synth_out"], arch["widths"][0], arch["latent_kernel"]))


def rgb_stem(arch):
    """ResNet stem (7x7/2 conv, 3x3/2 max pool: 224 -> 56), a stage at 56, stride-2 block -> 28."""
    c = arch["rgb_width"]
    return nn.Sequential(ImageInput(), conv_bn(3, c, 7, 2), nn.MaxPool2d(3, 2, 1),
                         stage(c, c, arch["rgb_blocks"], 1),
                         BasicBlock(c, arch["widths"][0], 2))


def cheap_rgb_stem(arch):
    """4x4 stride-4 patchify (224 -> 56) and a 3x3 stride-2 conv (-> 28): about the latent MACs."""
    c = arch["cheap_width"]
    return nn.Sequential(ImageInput(), conv_bn(3, c, 4, 4), conv_bn(c, arch["widths"][0], 3, 2))


class Classifier(nn.Module):
    def __init__(self, arch):
        super().__init__()
        stems = {"latent": latent_stem, "rgb": rgb_stem, "decoded": rgb_stem,
                 "rgb-cheap": cheap_rgb_stem}
        self.stem = stems[arch["input"]](arch)
        self.trunk = Trunk(arch["widths"], arch["blocks"], arch["classes"])

    def forward(self, x):
        return self.trunk(self.stem(x))


# ---------------------------------------------------------------- segmenters

class ASPPLite(nn.Module):
    """Parallel 1x1, two dilated 3x3 and an image-pooling branch, concatenated, 1x1 back to c."""

    def __init__(self, c, dilations=(3, 6)):
        super().__init__()
        b = c // 2
        self.branches = nn.ModuleList([conv_bn(c, b, 1)] +
                                      [conv_bn(c, b, 3, dilation=d) for d in dilations])
        self.pool = nn.Sequential(nn.Conv2d(c, b, 1), nn.ReLU(inplace=True))  # no BN on 1x1 maps
        self.project = conv_bn(b * (len(dilations) + 2), c, 1)

    def forward(self, x):
        outs = [br(x) for br in self.branches]
        pooled = self.pool(F.adaptive_avg_pool2d(x, 1))
        outs.append(pooled.expand(-1, -1, x.shape[2], x.shape[3]))
        return self.project(torch.cat(outs, 1))


class UpStage(nn.Module):
    """x2 bilinear upsampling and a separable 3x3 refinement (depthwise + pointwise), no skips."""

    def __init__(self, cin, cout):
        super().__init__()
        self.dw = conv_bn(cin, cin, 3, groups=cin)
        self.pw = conv_bn(cin, cout, 1)

    def forward(self, x):
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.pw(self.dw(x))


class FuseBlock(nn.Module):
    """A bottleneck residual block (1x1 to ``mid``, 3x3, 1x1 back) on the head's 1/4-resolution
    features joined with the skip: the two meet in a 3x3 convolution at 1/4, where otherwise they
    meet only in the next stage's depthwise 3x3 and 1x1 at 1/2 (the DeepLabv3+ decoder's point:
    context from 1/8 and detail from 1/4 combined spatially). Its last BatchNorm's scale starts at
    zero, so the block starts as the identity (its input is post-ReLU) and a network grows it."""

    def __init__(self, c, mid):
        super().__init__()
        self.body = nn.Sequential(conv_bn(c, mid, 1), conv_bn(mid, mid, 3), conv_bn(mid, c, 1, relu=False))
        nn.init.zeros_(self.body[2][1].weight)

    def forward(self, x):
        return F.relu(x + self.body(x))


class SegHead(nn.Module):
    """At 1/8: a 3x3 conv to ``width``, BasicBlocks (dilation 1, 2, ...), ASPP-lite; then one
    x2 upsampling stage per entry of ``up`` (its channels), a 1x1 classifier, and bilinear
    upsampling of the logits for the rest of the way to full resolution (with two stages: x2 from
    1/2, where refining 11-class logits costs far less than refining features). With ``skip`` > 0,
    that many channels of 1/4-resolution features (the synthesis stem's) join the first stage's
    output before the second stage; with ``fuse`` > 0 as well, a FuseBlock of that bottleneck width
    combines them at 1/4 before that stage."""

    def __init__(self, cin, width, blocks, up, classes, skip=0, fuse=0):
        super().__init__()
        if len(up) > 3:
            raise ValueError("at most three x2 stages from 1/8")
        if skip and len(up) < 2:
            raise ValueError("a 1/4-resolution skip needs at least two x2 stages")
        if fuse and not skip:
            raise ValueError("a fuse block joins the 1/4-resolution skip: it needs one")
        self.inp = conv_bn(cin, width, 3)
        self.blocks = nn.Sequential(*[BasicBlock(width, width, dilation=1 + i)
                                      for i in range(blocks)])
        self.aspp = ASPPLite(width)
        chans = [width] + list(up)
        self.up = nn.Sequential(*[UpStage(chans[i] + (skip if i == 1 else 0), chans[i + 1])
                                  for i in range(len(up))])
        self.fuse = FuseBlock(chans[1] + skip, fuse) if fuse else None
        self.cls = nn.Conv2d(chans[-1], classes, 1)
        self.rest = 2 ** (3 - len(up))

    def forward(self, x, skip=None):
        """``skip``: features at 1/4 of the image side, joined to the first stage's output."""
        x = self.aspp(self.blocks(self.inp(x)))
        for i, stage_ in enumerate(self.up):
            if i == 1 and skip is not None:
                x = torch.cat([x, skip], 1)
                if self.fuse is not None:
                    x = self.fuse(x)
            x = stage_(x)
        logits = self.cls(x)
        if self.rest == 1:
            return logits
        return F.interpolate(logits, scale_factor=float(self.rest), mode="bilinear",
                             align_corners=False)


def seg_rgb_stem(arch):
    """Three 3x3 stride-2 convs: RGB -> 64 channels at 1/8, the latents' shape."""
    chans = [3] + list(arch["stem_widths"])
    return nn.Sequential(ImageInput(), *[conv_bn(chans[i], chans[i + 1], 3, 2)
                                         for i in range(len(chans) - 1)])


class SynthesisStem(nn.Module):
    """Latents -> the codec's own first synthesis layer (transposed conv to 1/4 and inverse GDN,
    frozen: what the decoder computes first) -> a trainable 3x3 stride-2 conv back to 1/8,
    concatenated with the scaled latents. The decoded-pixel path re-encodes the whole synthesis
    output; this stem gives the latent head the first, cheapest part of that nonlinearity."""

    def __init__(self, channels, hidden, out, skip=0, train=False, blocks=0, block_width=48):
        super().__init__()
        self.latents = LatentInput(channels)
        self.deconv = nn.ConvTranspose2d(channels, hidden, 5, stride=2, padding=2, output_padding=1)
        # ``train``: the transposed conv starts as the codec's and is fine-tuned with the head (the
        # inverse GDN stays frozen: its parameters must stay positive)
        self.deconv.requires_grad_(train)
        self.register_buffer("beta", torch.ones(hidden))
        self.register_buffer("gamma", torch.zeros(hidden, hidden, 1, 1))
        # ``blocks`` > 0: a 1x1 conv to ``block_width`` and that many BasicBlocks at 1/4, learned
        # depth where the decoded path has the rest of the synthesis
        self.refine = (nn.Sequential(conv_bn(hidden, block_width, 1),
                                     *[BasicBlock(block_width, block_width) for _ in range(blocks)])
                       if blocks else None)
        c = block_width if blocks else hidden
        self.down = conv_bn(c, out, 3, 2)
        # ``skip`` > 0: the 1/4-resolution features also go, through a 1x1 conv, to the head's
        # 1/4 stage (a U-Net skip from the decoder's first layer instead of from an encoder)
        self.skip = conv_bn(c, skip, 1) if skip else None

    def load_synthesis(self, weight, bias, gamma, beta):
        """The first ConvTranspose and inverse GDN of an exported synthesis graph."""
        self.deconv.weight.data.copy_(torch.as_tensor(weight))
        self.deconv.bias.data.copy_(torch.as_tensor(bias))
        self.gamma.copy_(torch.as_tensor(gamma))
        self.beta.copy_(torch.as_tensor(beta))

    def functional_macs(self, y):
        """The inverse GDN's 1x1 convolution (F.conv2d, unseen by module hooks) at 1/4."""
        return self.gamma.shape[0] * self.gamma.shape[1] * 4 * y.shape[-2] * y.shape[-1]

    def forward(self, y):
        h = self.deconv(y.float())
        h = h * torch.sqrt(F.conv2d(h * h, self.gamma, self.beta))
        if self.refine is not None:
            h = self.refine(h)
        x = torch.cat([self.latents(y), self.down(h)], 1)
        return x if self.skip is None else (x, self.skip(h))


class Segmenter(nn.Module):
    def __init__(self, arch):
        super().__init__()
        skip = 0
        if arch["input"] == "latent" and arch.get("latent_stem") == "synthesis":
            skip = arch.get("synth_skip", 0)
            self.stem = SynthesisStem(arch["latent_channels"], arch["synth_hidden"],
                                      arch["synth_out"], skip, arch.get("synth_train", False),
                                      arch.get("synth_blocks", 0), arch.get("synth_block_width", 48))
            cin = arch["latent_channels"] + arch["synth_out"]
        elif arch["input"] == "latent":
            self.stem, cin = LatentInput(arch["latent_channels"]), arch["latent_channels"]
        else:
            self.stem, cin = seg_rgb_stem(arch), arch["stem_widths"][-1]
        self.head = SegHead(cin, arch["width"], arch["blocks"], arch["up"], arch["classes"], skip,
                            arch.get("fuse", 0))

    def forward(self, x):
        x = self.stem(x)
        return self.head(*x) if isinstance(x, tuple) else self.head(x)


def first_module(model, kind):
    """The first submodule of ``model`` (itself included) that is a ``kind``, or None."""
    return next((m for m in model.modules() if isinstance(m, kind)), None)


def latent_input(model):
    """The LatentInput of a network, or None for an RGB network."""
    return first_module(model, LatentInput)


def synthesis_stem(model):
    """The SynthesisStem of a network, or None: its first synthesis layer is loaded from the codec."""
    return first_module(model, SynthesisStem)
