"""ImageNet-style classification with HRNet-Wx-C (the paper's Appendix A): data, recipe, metrics, API, CLI.

``Classifier`` predicts and evaluates; ``train`` runs the shared engine on a :class:`ClsConfig`;
``hrnet cls train | eval | predict`` is the command line (:mod:`hrnet.classification.cli`).

Names are imported from their submodules on first use (:func:`hrnet.lazy.lazy_package`), so importing
the package, as the task registry does, stays cheap.
"""

from hrnet.lazy import lazy_package

__all__ = lazy_package(
    __name__,
    {
        "hrnet.classification.api": ["Classifier", "ClassScore", "ClsResult"],
        "hrnet.classification.classes": ["imagenet_class_names", "imagenet_classes", "read_class_names"],
        "hrnet.classification.config": ["ClsConfig", "ClsDataConfig", "ClsModelConfig", "ClsTestConfig"],
        "hrnet.classification.datasets": ["ClassificationDataset", "build_dataset", "collate_skip"],
        "hrnet.classification.evaluation": ["evaluate_classifier"],
        "hrnet.classification.metrics": ["TopKMeter", "topk_correct"],
        "hrnet.classification.model": ["build_model", "make_card"],
        "hrnet.classification.train": ["evaluate", "scaled_lr", "train"],
        "hrnet.classification.transforms": ["eval_transform", "train_transform"],
    },
)
