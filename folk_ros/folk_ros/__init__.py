"""ROS 2 glue for folk_model: conversions, sync, pose sources, the segmentation worker, nodes.

Heavy logic (fusion, the student, labelling) lives in the ROS-free ``folk_model``.
"""
