"""The score stage: what the synthetic images are worth (CLIP image-text scores, stored embeddings,
near-duplicates, image-level diversity and fidelity, the real-data classifier's view of every image), and the
filters that read them as views. Nothing is deleted."""
