"""The generate stage: the planned images into WebDataset shards and the manifest, resumable, on one process,
torchrun ranks or Ray; ``verify`` reads them back."""
