"""The detection task's entry in the registry (:mod:`hrnet.tasks`): HRNetV2p detectors and instance masks.

It provides the ``person_detector`` interface that top-down pose uses, so pose finds people with our
detectors without importing this package. Detectors take lists of images of any size, so they have no
fixed-shape export.
"""

from hrnet.registry import Ref, TaskSpec

SPEC = TaskSpec(
    name="det",
    package="hrnet.detection",
    help="object detection and instance segmentation (HRNetV2p)",
    model_prefixes=(
        "faster_rcnn_",
        "mask_rcnn_",
        "cascade_rcnn_",
        "cascade_mask_rcnn_",
        "fcos_",
        "retinanet_",
        "centernet_",
        "keypoint_rcnn_",
    ),
    list_models=Ref("hrnet.detection.model:list_detectors"),
    create_model=Ref("hrnet.detection.model:build_detector"),
    default_input_size=Ref("hrnet.detection.model:default_input_size"),
    model_from_card=Ref("hrnet.detection.model:model_from_card"),
    check_card=Ref("hrnet.detection.model:check_card"),
    default_card=None,
    head_argument="num_classes",
    facade=Ref("hrnet.detection.api:Detector"),
    config=Ref("hrnet.detection.config:DetConfig"),
    config_dir="det",
    cli=Ref("hrnet.detection.cli:add_subcommands"),
    provides={"person_detector": Ref("hrnet.detection.api:person_detector")},
)
