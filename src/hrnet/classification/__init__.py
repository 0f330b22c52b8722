"""ImageNet-style classification with HRNet-Wx-C (the paper's Appendix A): data, recipe, metrics, API, CLI.

``Classifier`` predicts and evaluates; ``train`` runs the shared engine on a :class:`ClsConfig`;
``hrnet cls train | eval | predict`` is the command line (:mod:`hrnet.classification.cli`).
"""

from hrnet.classification.api import Classifier, ClassScore, ClsResult
from hrnet.classification.classes import imagenet_class_names, imagenet_classes, read_class_names
from hrnet.classification.config import ClsConfig, ClsDataConfig, ClsModelConfig, ClsTestConfig
from hrnet.classification.datasets import ClassificationDataset, build_dataset, collate_skip
from hrnet.classification.evaluation import evaluate_classifier
from hrnet.classification.metrics import TopKMeter, topk_correct
from hrnet.classification.model import build_model, make_card
from hrnet.classification.train import evaluate, scaled_lr, train
from hrnet.classification.transforms import eval_transform, train_transform

__all__ = [
    "Classifier",
    "ClassScore",
    "ClsResult",
    "ClsConfig",
    "ClsDataConfig",
    "ClsModelConfig",
    "ClsTestConfig",
    "ClassificationDataset",
    "TopKMeter",
    "build_dataset",
    "build_model",
    "collate_skip",
    "eval_transform",
    "evaluate",
    "evaluate_classifier",
    "imagenet_class_names",
    "imagenet_classes",
    "make_card",
    "read_class_names",
    "scaled_lr",
    "topk_correct",
    "train",
    "train_transform",
]
