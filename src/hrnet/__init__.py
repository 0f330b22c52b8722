"""hrnet: High-Resolution Networks for pose, segmentation, detection and classification.

One backbone (``hrnet.models.backbone``) serves every task; ``create_model`` builds any named
configuration, ``load_weights`` reads official / timm / mmpose / mmseg checkpoints strictly, and
``load_model`` rebuilds a trained model from a weights file that carries its model card; ``fuse`` and
``optimize_for_inference`` give the fast inference paths the task facades use.
"""

from hrnet.loader import create_model, list_models, load_model
from hrnet.models.card import ModelCard, read_card
from hrnet.models.complexity import model_complexity
from hrnet.models.fuse import fuse
from hrnet.models.weights import load_weights, read_state_dict, save_weights
from hrnet.runtime import optimize_for_inference
from hrnet.version import __version__

__all__ = [
    "ModelCard",
    "create_model",
    "fuse",
    "optimize_for_inference",
    "list_models",
    "load_model",
    "load_weights",
    "read_card",
    "read_state_dict",
    "save_weights",
    "model_complexity",
    "__version__",
]
