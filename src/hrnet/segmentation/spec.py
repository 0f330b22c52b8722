"""The segmentation task's entry in the registry (:mod:`hrnet.tasks`): HRNetV2 per-pixel classes."""

from hrnet.registry import ExportSpec, Ref, TaskSpec

SPEC = TaskSpec(
    name="seg",
    package="hrnet.segmentation",
    help="semantic segmentation (HRNetV2)",
    model_prefixes=("seg_",),
    list_models=Ref("hrnet.models.zoo:list_models"),
    create_model=Ref("hrnet.models.zoo:create_model"),
    default_input_size=Ref("hrnet.models.zoo:default_input_size"),
    model_from_card=Ref("hrnet.segmentation.model:model_from_card"),
    check_card=Ref("hrnet.segmentation.model:check_card"),
    default_card=Ref("hrnet.segmentation.model:default_card"),
    head_argument="num_classes",
    facade=Ref("hrnet.segmentation.api:Segmenter"),
    config=Ref("hrnet.segmentation.config:SegConfig"),
    config_dir="seg",
    cli=Ref("hrnet.segmentation.cli:add_subcommands"),
    export=ExportSpec(("logits",), ("labels",), Ref("hrnet.segmentation.decode:decoder_from_card")),
)
