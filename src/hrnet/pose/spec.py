"""The pose task's entry in the registry (:mod:`hrnet.tasks`): HRNetV1 top-down keypoint heatmaps."""

from hrnet.registry import ExportSpec, Ref, TaskSpec

SPEC = TaskSpec(
    name="pose",
    package="hrnet.pose",
    help="human pose estimation (HRNetV1)",
    model_prefixes=("pose_",),
    list_models=Ref("hrnet.models.zoo:list_models"),
    create_model=Ref("hrnet.models.zoo:create_model"),
    default_input_size=Ref("hrnet.models.zoo:default_input_size"),
    model_from_card=Ref("hrnet.pose.model:model_from_card"),
    check_card=Ref("hrnet.pose.model:check_card"),
    default_card=Ref("hrnet.pose.model:default_card"),
    head_argument="num_joints",
    facade=Ref("hrnet.pose.api:PoseEstimator"),
    config=Ref("hrnet.pose.config:PoseConfig"),
    config_dir="pose",
    cli=Ref("hrnet.pose.cli:add_subcommands"),
    export=ExportSpec(("heatmaps",), ("keypoints", "scores"), Ref("hrnet.pose.decode:decoder_from_card")),
    requires=("person_detector",),
)
