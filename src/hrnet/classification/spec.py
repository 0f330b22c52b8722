"""The classification task's entry in the registry (:mod:`hrnet.tasks`): HRNet-Wx-C on ImageNet.

Its model names carry no prefix (``hrnet_w32``, as timm spells them), so it is the registry's fallback.
"""

from hrnet.registry import ExportSpec, Ref, TaskSpec

SPEC = TaskSpec(
    name="cls",
    package="hrnet.classification",
    help="ImageNet-style classification (HRNet-Wx-C)",
    model_prefixes=("",),
    list_models=Ref("hrnet.models.zoo:list_models"),
    create_model=Ref("hrnet.models.zoo:create_model"),
    default_input_size=Ref("hrnet.models.zoo:default_input_size"),
    model_from_card=Ref("hrnet.classification.model:model_from_card"),
    check_card=Ref("hrnet.classification.model:check_card"),
    default_card=Ref("hrnet.classification.model:default_card"),
    head_argument="num_classes",
    facade=Ref("hrnet.classification.api:Classifier"),
    config=Ref("hrnet.classification.config:ClsConfig"),
    config_dir="cls",
    cli=Ref("hrnet.classification.cli:add_subcommands"),
    export=ExportSpec(("logits",), ("scores", "indices"), Ref("hrnet.classification.decode:decoder_from_card")),
)
