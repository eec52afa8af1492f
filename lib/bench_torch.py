"""The PyTorch side of `python -m lib.bench --compare torch`: a plain CIFAR ResNet-20 of our own.

The same network as `cifar_resnet` depth 20 width 16 (post-activation basic blocks, projection
shortcuts with BatchNorm, global average pool, linear head), trained by a plain loop: forward,
cross-entropy, backward, SGD with momentum 0.9 and coupled weight decay 1e-4, as our trainer's
default optimizer. Channels-first, PyTorch's default layout. Needs the `[bench]` extra.
"""

from __future__ import annotations

import time

INSTALL = ('PyTorch is not installed: `pip install -e ".[bench]"` (a CPU wheel is enough: '
           "add `--extra-index-url https://download.pytorch.org/whl/cpu` to skip the CUDA "
           "libraries)")


class MissingExtra(RuntimeError):
    """PyTorch is not installed; the message says how to install it."""


def _torch():
    try:
        import torch
    except ImportError as e:
        raise MissingExtra(f"--compare torch needs the [bench] extra. {INSTALL}") from e
    return torch


def _block(torch, cin, cout, stride):
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.shortcut = nn.Identity()
            if stride != 1 or cin != cout:
                self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                              nn.BatchNorm2d(cout))

        def forward(self, x):
            y = torch.relu(self.bn1(self.conv1(x)))
            return torch.relu(self.bn2(self.conv2(y)) + self.shortcut(x))

    return Block()


def resnet20(num_classes: int = 10, width: int = 16):
    """CIFAR ResNet-20: stem conv-BN-ReLU, 3 stages of 3 blocks at W, 2W, 4W, pool, head."""
    torch = _torch()
    nn = torch.nn
    layers = [nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
    cin = width
    for stage, w in enumerate((width, 2 * width, 4 * width)):
        for j in range(3):
            layers.append(_block(torch, cin, w, 2 if stage and j == 0 else 1))
            cin = w
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes)]
    return nn.Sequential(*layers)


class TrainLoop:
    """One training step of ResNet-20 on a fixed synthetic batch; `trainable`: all | bn_only."""

    def __init__(self, trainable: str, batch: int, threads: int, seed: int = 0):
        torch = self.torch = _torch()
        torch.set_num_threads(threads)
        torch.manual_seed(seed)
        self.model = resnet20().train()
        for module in self.model.modules():
            if trainable == "bn_only" and not isinstance(module, torch.nn.BatchNorm2d):
                for p in module.parameters(recurse=False):
                    p.requires_grad_(False)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-4)
        self.images = torch.randn(batch, 3, 32, 32)
        self.labels = torch.randint(0, 10, (batch,))

    def step(self) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.torch.nn.functional.cross_entropy(self.model(self.images), self.labels)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())  # waits for the step, as block_until_ready does on our side

    def seconds(self, steps: int) -> float:
        t0 = time.perf_counter()
        for _ in range(steps):
            self.step()
        return time.perf_counter() - t0


def version() -> str:
    return _torch().__version__
