"""Task models: the backbone plus one representation head, with the official state-dict layout.

Each class subclasses :class:`HRNetBackbone` and adds its head's layers as direct attributes
(``final_layer``, ``last_layer``, ``incre_modules``/``downsamp_modules``/``final_layer``/``classifier``),
so ``model.state_dict()`` has exactly the keys of the official pose, segmentation and
classification checkpoints. Each declares its head (``head_prefixes``, ``head_unit``, ``head_size``)
so one loader can tell a head of another size from a wrong file (:func:`hrnet.models.weights.load_weights`).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from hrnet.models.backbone import HRNetBackbone, HRNetConfig
from hrnet.models.heads import (
    build_head_c,
    build_head_cii,
    build_seg_last_layer,
    build_v2_mix_head,
    head_c_forward,
    head_ci_forward,
    head_cii_forward,
    v2_concat,
)

CLS_HEADS = ("c", "ci", "cii")


class HRNetClassifier(HRNetBackbone):
    """HRNet-Wx-C (Fig. 11) and the Table 14 alternatives Ci / Cii, with a linear classifier."""

    head_prefixes = ("classifier.",)
    head_unit = "classes"

    def __init__(self, cfg: HRNetConfig, num_classes: int = 1000, head: str = "c") -> None:
        super().__init__(cfg)
        if head not in CLS_HEADS:
            raise ValueError(f"head must be one of {CLS_HEADS}, got {head!r}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.head = head
        if head == "c":
            for name, module in build_head_c(self.out_channels, cfg.bn_momentum).items():
                self.add_module(name, module)
            dim = 2048
        elif head == "ci":
            dim = sum(self.out_channels)
        else:
            self.incre_modules = build_head_cii(self.out_channels, bn_momentum=cfg.bn_momentum)
            dim = 2048
        self.num_features = dim
        self.classifier = nn.Linear(dim, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        """The pooled representation fed to the classifier."""
        xs = self.forward_streams(x)
        if self.head == "c":
            return head_c_forward(self.incre_modules, self.downsamp_modules, self.final_layer, xs)
        if self.head == "ci":
            return head_ci_forward(xs)
        return head_cii_forward(self.incre_modules, xs)

    @property
    def head_size(self) -> int:
        """Number of classes."""
        return self.classifier.out_features

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.forward_features(x))


class HRNetPose(HRNetBackbone):
    """HRNetV1 for pose: the high-resolution stream and a 1x1 conv to one heatmap per keypoint."""

    head_prefixes = ("final_layer.",)
    head_unit = "keypoints"

    def __init__(self, cfg: HRNetConfig, num_joints: int = 17, final_conv_kernel: int = 1) -> None:
        super().__init__(cfg)
        if num_joints < 1:
            raise ValueError(f"num_joints must be >= 1, got {num_joints}")
        self.num_joints = num_joints
        self.final_layer = nn.Conv2d(
            self.out_channels[0], num_joints, kernel_size=final_conv_kernel, padding=final_conv_kernel // 2
        )

    @property
    def head_size(self) -> int:
        """Number of keypoints (heatmaps)."""
        return self.num_joints

    def forward(self, x: Tensor) -> Tensor:
        return self.final_layer(self.forward_streams(x)[0])


class HRNetPoseV2(HRNetBackbone):
    """HRNetV2 for keypoints (the official facial landmark model, mmpose's face and hand HRNetV2): all four
    streams upsampled and concatenated, 1x1 conv + BN + ReLU, then a 1x1 conv to one heatmap per keypoint.

    The head is ``head`` (indices 0, 1, 3) as in HRNet-Facial-Landmark-Detection's checkpoints. mmpose keeps
    the same layers under other names (0.x ``keypoint_head.final_layer.{0,1,3}``, 1.x
    ``head.conv_layers.{0,1}`` + ``head.final_layer``); :meth:`convert_state_dict` maps them here, so every
    published layout loads strictly.
    """

    head_prefixes = ("head.3.",)  # the heatmap conv; head.0 / head.1 do not depend on the keypoint count
    head_unit = "keypoints"

    def __init__(self, cfg: HRNetConfig, num_joints: int = 98) -> None:
        super().__init__(cfg)
        if num_joints < 1:
            raise ValueError(f"num_joints must be >= 1, got {num_joints}")
        self.num_joints = num_joints
        self.head = build_v2_mix_head(sum(self.out_channels), num_joints, cfg.bn_momentum)

    @property
    def head_size(self) -> int:
        """Number of keypoints (heatmaps)."""
        return self.num_joints

    @staticmethod
    def convert_state_dict(state: dict[str, Tensor]) -> dict[str, Tensor]:
        """mmpose's names of the head -> ours (after :func:`hrnet.models.weights.normalize_keys` has mapped
        ``keypoint_head.final_layer.`` / ``head.final_layer.`` to ``final_layer.``)."""
        out = {}
        for key, value in state.items():
            if key.startswith("final_layer."):
                rest = key[len("final_layer.") :]
                # 0.x: final_layer.{0,1,3}.*; 1.x: final_layer.{weight,bias} is the last conv
                key = "head." + (rest if rest[0].isdigit() else "3." + rest)
            elif key.startswith("head.conv_layers."):
                key = "head." + key[len("head.conv_layers.") :]
            out[key] = value
        return out

    def forward(self, x: Tensor) -> Tensor:
        return self.head(v2_concat(self.forward_streams(x), self.cfg.align_corners))


class HRNetSegmentation(HRNetBackbone):
    """HRNetV2 for segmentation: concatenated streams, then ``last_layer``; logits at 1/4 resolution."""

    head_prefixes = ("last_layer.3.",)  # the classifier conv; last_layer.0/1 do not depend on the classes
    head_unit = "classes"

    def __init__(self, cfg: HRNetConfig, num_classes: int = 19) -> None:
        super().__init__(cfg)
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.last_layer = build_seg_last_layer(sum(self.out_channels), num_classes, cfg.bn_momentum)

    @property
    def head_size(self) -> int:
        """Number of classes."""
        return self.num_classes

    def forward(self, x: Tensor) -> Tensor:
        return self.last_layer(v2_concat(self.forward_streams(x), self.cfg.align_corners))


class HRNetFeatures(HRNetBackbone):
    """Multi-resolution features of one stage, like timm's ``features_only``.

    ``feature_info`` lists, for each returned map, its channels (``num_chs``), stride (``reduction``)
    and the module that produced it. Stage 1 has one stream (stride 4); stage s >= 2 has s streams.
    """

    head_prefixes = ()

    def __init__(self, cfg: HRNetConfig, stage: int = 4, out_indices: Sequence[int] | None = None) -> None:
        super().__init__(cfg)
        if stage not in (1, 2, 3, 4):
            raise ValueError(f"stage must be 1, 2, 3 or 4, got {stage}")
        if stage == 1:
            channels = [self.layer1[-1].conv3.out_channels]
        else:
            channels = getattr(self, f"stage{stage}")[-1].out_channels
        n = len(channels)
        indices = tuple(range(n)) if out_indices is None else tuple(out_indices)
        bad = [i for i in indices if not 0 <= i < n]
        if bad:
            raise ValueError(f"out_indices {bad} out of range: stage {stage} has streams 0..{n - 1}")
        self.stage, self.out_indices = stage, indices
        for s in range(stage + 1, 5):  # drop the unused later stages so they hold no parameters
            setattr(self, f"transition{s - 1}", nn.ModuleList())
            setattr(self, f"stage{s}", nn.Sequential())
        module = "layer1" if stage == 1 else f"stage{stage}"
        self.feature_info = [
            {"num_chs": channels[i], "reduction": 4 * 2**i, "module": f"{module}.stream{i}"} for i in indices
        ]

    def forward(self, x: Tensor) -> list[Tensor]:
        xs = self.forward_stages(x, upto=self.stage)[-1]
        return [xs[i] for i in self.out_indices]
