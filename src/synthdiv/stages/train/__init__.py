"""The train stage: timm classifiers on real + synthetic images with auxiliary normalization, one per variant,
exported as plain timm weights. Importing it does not import torch."""
