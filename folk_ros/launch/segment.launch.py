"""Launch folk_node with a parameter file and the usual overrides.

    ros2 launch folk_ros segment.launch.py weights:=/path/student.pt device:=cuda \
        color_topic:=/camera/color/image_raw depth_topic:=/camera/aligned_depth_to_color/image_raw \
        camera_info_topic:=/camera/color/camera_info fixed_frame:=map

Parameters come from ``config`` (default: this package's config/segment.yaml); the
arguments below override it. Topic arguments remap the node's relative input names.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue


def generate_launch_description() -> LaunchDescription:
    default_config = os.path.join(get_package_share_directory("folk_ros"), "config",
                                  "segment.yaml")
    args = [
        DeclareLaunchArgument("config", default_value=default_config,
                              description="parameter file (see config/segment.yaml)"),
        DeclareLaunchArgument("weights", default_value="",
                              description="student weights .pt; empty = the demo weights "
                                          "shipped in folk_model"),
        DeclareLaunchArgument("device", default_value="cpu",
                              description="torch device: cpu, cuda, cuda:1"),
        DeclareLaunchArgument("fixed_frame", default_value="map",
                              description="frame of the map and all outputs"),
        DeclareLaunchArgument("pose_source", default_value="tf",
                              description="camera pose from tf, pose (PoseStamped topic), "
                                          "odometry (Odometry topic) or auto"),
        DeclareLaunchArgument("color_topic", default_value="/camera/color/image_raw",
                              description="colour image (rgb8 or bgr8)"),
        DeclareLaunchArgument("depth_topic",
                              default_value="/camera/aligned_depth_to_color/image_raw",
                              description="depth registered to colour (16UC1 mm or 32FC1 m)"),
        DeclareLaunchArgument("camera_info_topic", default_value="/camera/color/camera_info",
                              description="camera_info of the colour camera"),
        DeclareLaunchArgument("pose_topic", default_value="/camera/pose",
                              description="PoseStamped of the colour optical frame "
                                          "(pose_source:=pose)"),
        DeclareLaunchArgument("odom_topic", default_value="/odom",
                              description="Odometry of the colour optical frame "
                                          "(pose_source:=odometry)"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="node namespace"),
    ]
    node = Node(
        package="folk_ros",
        executable="folk_node",
        name="folk_node",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=[
            LaunchConfiguration("config"),
            {
                "weights": ParameterValue(LaunchConfiguration("weights"), value_type=str),
                "device": ParameterValue(LaunchConfiguration("device"), value_type=str),
                "fixed_frame": ParameterValue(LaunchConfiguration("fixed_frame"), value_type=str),
                "pose_source": ParameterValue(LaunchConfiguration("pose_source"), value_type=str),
            },
        ],
        remappings=[
            ("color/image", LaunchConfiguration("color_topic")),
            ("depth/image", LaunchConfiguration("depth_topic")),
            ("color/camera_info", LaunchConfiguration("camera_info_topic")),
            ("pose", LaunchConfiguration("pose_topic")),
            ("odom", LaunchConfiguration("odom_topic")),
        ],
    )
    return LaunchDescription([*args, node])
