"""Training data: real and synthetic sample sets, the low-data / long-tail protocols, and the mixed loader.

Importing this package does not import torch; the loader imports it when built.
"""

from synthdiv.data.images import ImageDataset, build_transforms, collate_blocks, decode_rgb
from synthdiv.data.mixed import BatchPlan, block_sizes, make_loader
from synthdiv.data.protocols import RealProtocol, apply_protocol, long_tail, low_data, pareto_profile, protocol_counts
from synthdiv.data.real import class_lookup, imagefolder_samples, real_samples, shard_samples
from synthdiv.data.sources import SampleSet, index_tar, list_images
from synthdiv.data.synthetic import manifest_samples, shard_path
from synthdiv.utils.decode import SkipTally, UnreadableImage, decode_image

__all__ = [
    "SampleSet",
    "index_tar",
    "list_images",
    "class_lookup",
    "real_samples",
    "imagefolder_samples",
    "shard_samples",
    "shard_path",
    "manifest_samples",
    "low_data",
    "long_tail",
    "pareto_profile",
    "RealProtocol",
    "protocol_counts",
    "apply_protocol",
    "BatchPlan",
    "block_sizes",
    "make_loader",
    "ImageDataset",
    "collate_blocks",
    "build_transforms",
    "decode_rgb",
    "decode_image",
    "UnreadableImage",
    "SkipTally",
]
