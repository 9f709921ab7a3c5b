"""Per-modality encoders, decoders, data loading and metrics built on the ``tokenizers_vq`` core."""
