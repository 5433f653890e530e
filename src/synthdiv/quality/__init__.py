"""What the synthetic images are worth: stored CLIP embeddings, near-duplicates, image-level diversity and fidelity,
and the real-data classifier's view of every image. The score stage computes them; the filters read them.
"""
