"""Factorized-prior image codec (Balle et al., ICLR 2018) with latents at 1/8 scale.

Everything is implemented here (no CompressAI): GDN / inverse GDN with reparametrised
non-negative parameters, the per-channel non-parametric EntropyBottleneck and the codec.
Latents are quantised to plain integers (round(y)), so the bitstream carries integer
symbols and the edge hands integer tensors to the task networks.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

LIKELIHOOD_BOUND = 1e-9


class _LowerBound(torch.autograd.Function):
    """max(x, bound) whose gradient still flows when it pushes x upwards."""

    @staticmethod
    def forward(ctx, x, bound):
        ctx.save_for_backward(x, bound)
        return torch.max(x, bound)

    @staticmethod
    def backward(ctx, grad):
        x, bound = ctx.saved_tensors
        pass_through = (x >= bound) | (grad < 0)
        return pass_through.type(grad.dtype) * grad, None


def lower_bound(x, bound):
    """Differentiable lower bound (as in CompressAI's LowerBound)."""
    return _LowerBound.apply(x, torch.as_tensor(bound, dtype=x.dtype, device=x.device))


class NonNegative(nn.Module):
    """Reparametrisation p = max(v, b)^2 - pedestal that keeps p >= minimum."""

    def __init__(self, minimum=0.0, reparam_offset=2 ** -18):
        super().__init__()
        self.pedestal = reparam_offset ** 2
        self.bound = (minimum + self.pedestal) ** 0.5

    def init(self, x):
        return torch.sqrt(torch.clamp(x + self.pedestal, min=self.pedestal))

    def forward(self, v):
        return lower_bound(v, self.bound) ** 2 - self.pedestal


class GDN(nn.Module):
    """Generalized divisive normalisation: y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2)."""

    def __init__(self, channels, inverse=False, beta_min=1e-6, gamma_init=0.1):
        super().__init__()
        self.inverse = inverse
        self.beta_reparam = NonNegative(minimum=beta_min)
        self.gamma_reparam = NonNegative()
        self.beta = nn.Parameter(self.beta_reparam.init(torch.ones(channels)))
        self.gamma = nn.Parameter(self.gamma_reparam.init(gamma_init * torch.eye(channels)))

    def forward(self, x):
        c = x.shape[1]
        beta = self.beta_reparam(self.beta)
        gamma = self.gamma_reparam(self.gamma).view(c, c, 1, 1)
        norm = F.conv2d(x * x, gamma, beta)
        return x * torch.sqrt(norm) if self.inverse else x * torch.rsqrt(norm)


class EntropyBottleneck(nn.Module):
    """Per-channel learned non-parametric density (Balle 2018, appendix 6.1).

    The cumulative density is a small per-channel MLP (filters (3, 3, 3)). ``quantiles``
    track the tails and median of each channel; they are fitted by ``aux_loss`` with their
    own optimiser and give the support of the entropy-coding tables.
    """

    def __init__(self, channels, filters=(3, 3, 3), init_scale=10.0, tail_mass=1e-9):
        super().__init__()
        self.channels = channels
        dims = (1,) + tuple(filters) + (1,)
        scale = init_scale ** (1 / (len(filters) + 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(filters) + 1):
            init = math.log(math.expm1(1 / scale / dims[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, dims[i + 1], 1) - 0.5))
            if i < len(filters):
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))
        init_q = torch.tensor([-init_scale, 0.0, init_scale])
        self.quantiles = nn.Parameter(init_q.repeat(channels, 1, 1))
        target = math.log(2 / tail_mass - 1)
        self.register_buffer("target", torch.tensor([-target, 0.0, target]))

    def _logits_cumulative(self, x, stop_gradient):
        """x: (C, 1, K) -> logits of the CDF, (C, 1, K)."""
        for i, (matrix, bias) in enumerate(zip(self.matrices, self.biases)):
            matrix = F.softplus(matrix)
            if stop_gradient:
                matrix, bias = matrix.detach(), bias.detach()
            x = torch.matmul(matrix, x) + bias
            if i < len(self.factors):
                factor = torch.tanh(self.factors[i])
                if stop_gradient:
                    factor = factor.detach()
                x = x + factor * torch.tanh(x)
        return x

    def aux_loss(self):
        """Fits ``quantiles`` to the tails (tail_mass/2) and median of each channel."""
        logits = self._logits_cumulative(self.quantiles, stop_gradient=True)
        return torch.abs(logits - self.target).sum()

    @property
    def medians(self):
        return self.quantiles[:, 0, 1].detach()

    def likelihood(self, y):
        """P(y - 1/2 < Y < y + 1/2) for y of shape (B, C, H, W), bounded below by 1e-9."""
        b, c, h, w = y.shape
        v = y.permute(1, 0, 2, 3).reshape(c, 1, -1)
        lower = self._logits_cumulative(v - 0.5, stop_gradient=False)
        upper = self._logits_cumulative(v + 0.5, stop_gradient=False)
        sign = -torch.sign(lower + upper).detach()
        lik = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))
        lik = lower_bound(lik, LIKELIHOOD_BOUND)
        return lik.reshape(c, b, h, w).permute(1, 0, 2, 3)


def _conv(cin, cout, k=5, stride=2):
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)


def _deconv(cin, cout, k=5, stride=2):
    return nn.ConvTranspose2d(cin, cout, k, stride=stride, padding=k // 2,
                              output_padding=stride - 1)


class FactorizedCodec(nn.Module):
    """Analysis (3x conv5x5/2, GDN between) -> round -> synthesis (mirror, IGDN).

    Image side must be a multiple of 8; latents y have M channels at H/8 x W/8.
    """

    def __init__(self, N=96, M=64):
        super().__init__()
        self.g_a = nn.Sequential(
            _conv(3, N), GDN(N),
            _conv(N, N), GDN(N),
            _conv(N, M),
        )
        self.g_s = nn.Sequential(
            _deconv(M, N), GDN(N, inverse=True),
            _deconv(N, N), GDN(N, inverse=True),
            _deconv(N, 3),
        )
        self.entropy_bottleneck = EntropyBottleneck(M)

    def forward(self, x):
        """Returns (x_hat, likelihoods).

        Training ("mixed" quantisation): the rate uses y + U(-1/2, 1/2); the synthesis sees
        round(y) with a straight-through gradient. Eval: both use round(y).
        """
        y = self.g_a(x)
        y_round = torch.round(y)
        if self.training:
            noisy = y + torch.empty_like(y).uniform_(-0.5, 0.5)
            lik = self.entropy_bottleneck.likelihood(noisy)
            y_hat = y + (y_round - y).detach()
        else:
            y_hat = y_round
            lik = self.entropy_bottleneck.likelihood(y_hat)
        return self.g_s(y_hat), lik

    def aux_loss(self):
        return self.entropy_bottleneck.aux_loss()

    def parameter_groups(self):
        """(main, aux) parameter lists: aux holds only the entropy model's quantiles."""
        main, aux = [], []
        for name, p in self.named_parameters():
            (aux if name.endswith("quantiles") else main).append(p)
        return main, aux
