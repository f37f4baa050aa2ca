"""Launch folk_node with a parameter file and the usual overrides.

    ros2 launch folk_ros segment.launch.py weights:=/path/student.pt device:=cuda \
        color_topic:=/camera/color/image_raw depth_topic:=/camera/aligned_depth_to_color/image_raw \
        camera_info_topic:=/camera/color/camera_info fixed_frame:=map

Parameters come from ``config`` (default: this package's config/segment.yaml); weights,
device, vl_pretrained, fixed_frame, pose_source, pose_frame, floor_height, top_max_rise,
split_resting and tta_rotations override it only when given (non-empty).
``use_sim_time:=true`` when replaying a bag with ``ros2 bag play --clock`` (or in a
simulator): the node's clock and TF lookups then follow /clock. Topic arguments remap the
node's relative input names.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

# Arguments that override the parameter file only when given (empty = keep the file's value).
OVERRIDES = {
    "weights": "student weights .pt (empty: the config file's value; there \"\" means the "
               "demo weights shipped in folk_model)",
    "device": "torch device: cpu, cuda, cuda:1",
    "vl_pretrained": "the text encoder's CLIP checkpoint file on this machine, for weights "
                     "trained with one (empty: the config file's value; there \"\" means the "
                     "path the weights' manifest records)",
    "fixed_frame": "frame of the map and all outputs (default map)",
    "pose_source": "camera pose from tf (default), pose (PoseStamped topic), odometry or auto",
    "pose_frame": "frame the PoseStamped topic gives the pose of (empty: the camera itself)",
    "floor_height": "the floor's z in fixed_frame where it is known, e.g. 0.0 for a ground "
                    "robot's map frame (empty: unknown): a table top filling the view then "
                    "becomes an instance",
    "top_max_rise": "where the floor is unknown, a map in which nothing rises this many m "
                    "above the estimated floor has its top proposed as an instance (an arm's "
                    "camera over a table: 0.5; a bare floor is then proposed too; empty: the "
                    "config file's -1, as the weights say: off for the demo weights)",
    "split_resting": "objects standing on a furniture top proposed apart from it: 1 on, 0 off "
                     "(empty: the config file's -1, as the weights say)",
    "tta_rotations": "test-time turns the student averages: 1, 2 or 4 (empty: the config "
                     "file's 0, which means 4 with device:=cuda and 1 on the CPU)",
}
TYPED = {"floor_height": float, "top_max_rise": float, "split_resting": int,
         "tta_rotations": int}  # the rest are strings
TOPICS = {
    "color_topic": ("color/image", "/camera/color/image_raw", "colour image (rgb8 or bgr8)"),
    "depth_topic": ("depth/image", "/camera/aligned_depth_to_color/image_raw",
                    "depth registered to colour (16UC1 mm or 32FC1 m)"),
    "camera_info_topic": ("color/camera_info", "/camera/color/camera_info",
                          "camera_info of the colour camera"),
    "pose_topic": ("pose", "/camera/pose",
                   "PoseStamped of pose_frame (default the colour optical frame) "
                   "(pose_source:=pose)"),
    "odom_topic": ("odom", "/odom", "Odometry of the robot (child_frame_id, composed with the "
                   "camera mounting from TF or camera_mounting) (pose_source:=odometry)"),
}


def _node(context: LaunchContext, *args: object, **kwargs: object) -> list[Node]:
    """The node, with only the override arguments that were given (OpaqueFunction)."""
    overrides = {}
    for name in OVERRIDES:
        value = LaunchConfiguration(name).perform(context)
        if value:
            try:
                overrides[name] = TYPED.get(name, str)(value)
            except ValueError:
                raise ValueError(f"{name}:={value!r} is not a {TYPED[name].__name__}") from None
    sim = LaunchConfiguration("use_sim_time").perform(context).strip().lower()
    if sim not in ("true", "false"):
        raise ValueError(f"use_sim_time must be true or false, got {sim!r}")
    overrides["use_sim_time"] = sim == "true"
    return [
        Node(
            package="folk_ros",
            executable="folk_node",
            name="folk_node",
            namespace=LaunchConfiguration("namespace"),
            output="screen",
            parameters=[LaunchConfiguration("config"), overrides],
            remappings=[(inner, LaunchConfiguration(arg)) for arg, (inner, _, _) in
                        TOPICS.items()],
        )
    ]


def generate_launch_description() -> LaunchDescription:
    default_config = os.path.join(get_package_share_directory("folk_ros"), "config",
                                  "segment.yaml")
    args = [
        DeclareLaunchArgument("config", default_value=default_config,
                              description="parameter file (see config/segment.yaml)"),
        DeclareLaunchArgument("namespace", default_value="", description="node namespace"),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="follow /clock (bag replay with --clock, simulation)"),
    ]
    args += [DeclareLaunchArgument(n, default_value="", description=d)
             for n, d in OVERRIDES.items()]
    args += [DeclareLaunchArgument(n, default_value=default, description=d)
             for n, (_, default, d) in TOPICS.items()]
    return LaunchDescription([*args, OpaqueFunction(function=_node)])
