"""ament_python package folk_ros: the node, the scene player, launch and config files."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "folk_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="folk maintainers",
    maintainer_email="folk@example.com",
    description="ROS 2 node for FOLK open-vocabulary 3D instance segmentation",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "folk_node = folk_ros.node:main",
            "folk_player = folk_ros.player:main",
        ],
    },
)
