"""COCO's 80 detection classes and their category ids, for weights that carry no model card.

A carded file names its own classes and the dataset's category ids; official HRNet-Object-Detection and
mmdet checkpoints do not, but they were all trained on COCO: 80 classes in category-id order, with ids
1..90 that skip ten numbers (12, 26, 29, 30, 45, 66, 68, 69, 71, 83). Results must carry those ids for
pycocotools and the test server, so an uncarded 80-class detector gets this table.
"""

from __future__ import annotations

COCO_CLASSES = (
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
)
_UNUSED_IDS = (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)
COCO_CATEGORY_IDS = tuple(i for i in range(1, 91) if i not in _UNUSED_IDS)


def default_classes(num_classes: int) -> tuple[list[str], list[int]]:
    """Names and category ids of a detector without a card: COCO's for 80 classes, else ``"1".."K"`` / 1..K."""
    if num_classes == len(COCO_CLASSES):
        return list(COCO_CLASSES), list(COCO_CATEGORY_IDS)
    return [str(i) for i in range(1, num_classes + 1)], list(range(1, num_classes + 1))
