"""Label-guided distillation: losses, the label-consistency filter, ``folk-train``."""
